"""CLEVR generator: ray-primitive intersections, camera, CLEVR's placement rules, masks, JSON, determinism."""

import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from slotattn.data.generators.clevr import (
    MAX_NUM_ENTITIES,
    generate_clevr,
    generate_clevr_batch,
    render_scene,
    sample_scene,
    scene_rng,
    write_clevr_dataset,
)
from slotattn.data.generators.clevr.geometry import (
    CUBE,
    CYLINDER,
    SPHERE,
    Camera,
    intersect,
    intersect_box,
    intersect_cylinder,
    intersect_ground,
    intersect_sphere,
    look_at,
    surface_normal,
)
from slotattn.data.generators.clevr.scene import (
    COLOR_NAMES,
    COLORS,
    DIRECTIONS,
    MARGIN,
    MATERIAL_NAMES,
    MIN_DIST,
    SHAPE_NAMES,
    SIZE_NAMES,
    SIZES,
    min_pixels_for,
)

PROPERTIES_JSON = Path(__file__).resolve().parent / "fixtures" / "clevr" / "properties.json"  # see its README.md
OBJECT_KEYS = {"shape", "size", "material", "3d_coords", "rotation", "pixel_coords", "color"}


def rays(origins, dirs):
    o = np.asarray(origins, np.float64).reshape(-1, 3)
    d = np.asarray(dirs, np.float64).reshape(-1, 3)
    return o, d / np.linalg.norm(d, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def small_scenes():
    """Six scenes at 160x120 (fast, and large enough for the pixel_coords check)."""
    return generate_clevr(6, np.random.default_rng(123), width=160, height=120)


# --- intersections against closed forms --------------------------------------------------------------------------


def test_sphere_intersection_closed_form():
    o, d = rays([[0, 0, -5], [1.5, 0, -5], [0, 0, 0], [0.6, 0, -5]], [[0, 0, 1]] * 4)
    t, part = intersect_sphere(o, d, np.zeros(3), 1.0)
    np.testing.assert_allclose(t[[0, 2]], [4.0, 1.0], atol=1e-6)  # outside: near root; inside: far root
    np.testing.assert_allclose(t[3], 5.0 - np.sqrt(1 - 0.36), atol=1e-6)
    assert np.isinf(t[1]) and part.tolist() == [0, -1, 0, 0]


def test_box_intersection_closed_form_axis_aligned_and_rotated():
    o, d = rays([[-5, 0.3, 0.2], [0.2, -0.4, 5], [-5, 1.2, 0]], [[1, 0, 0], [0, 0, -1], [1, 0, 0]])
    t, part = intersect_box(o, d, np.zeros(3), 1.0, 0.0)
    np.testing.assert_allclose(t[:2], [4.0, 4.0], atol=1e-6)
    assert part.tolist() == [0, 5, -1]  # -x face, +z face, miss
    # rotated by 45 degrees the cube presents an edge at x = -sqrt(2); y = 1.2 now hits (|y| < sqrt(2) - |x|)
    t, part = intersect_box(o, d, np.zeros(3), 1.0, np.pi / 4)
    np.testing.assert_allclose(t[0], 5.0 - (np.sqrt(2) - 0.3), atol=1e-5)
    np.testing.assert_allclose(t[2], 5.0 - (np.sqrt(2) - 1.2), atol=1e-5)
    p = o[0] + t[0] * d[0]
    n = surface_normal(CUBE, p[None], part[:1], np.zeros(3), 1.0, np.pi / 4)[0]
    np.testing.assert_allclose(n, [-np.sqrt(0.5), np.sqrt(0.5), 0], atol=1e-6)  # face normal rotated by yaw


def test_cylinder_intersection_closed_form():
    o, d = rays(
        [[-5, 0, 0.5], [0.2, 0.3, 5], [0, 0, -5], [-5, 0, 1.5], [-5, 1.01, 0]],
        [[1, 0, 0], [0, 0, -1], [0, 0, 1], [1, 0, 0], [1, 0, 0]],
    )
    t, part = intersect_cylinder(o, d, np.zeros(3), 1.0, 1.0)
    np.testing.assert_allclose(t[:3], [4.0, 4.0, 4.0], atol=1e-6)
    assert part.tolist() == [0, 1, 2, -1, -1]  # side, top cap, bottom cap, above, beside
    # oblique ray through the rim region: enters the side at x = -1, z = 0.9 and must not pick the cap
    o, d = rays([[-3, 0, 0.5]], [[1, 0, 0.2]])
    t, part = intersect_cylinder(o, d, np.zeros(3), 1.0, 1.0)
    np.testing.assert_allclose(t[0], 2.0 * np.sqrt(1.04), atol=1e-6)
    assert part[0] == 0


def test_ground_intersection():
    o, d = rays([[0, 0, 2], [0, 0, 2], [0, 0, -1]], [[1, 0, -1], [1, 0, 1], [0, 0, -1]])
    t = intersect_ground(o, d)
    np.testing.assert_allclose(t[0], 2 * np.sqrt(2), atol=1e-6)
    assert np.isinf(t[1]) and np.isinf(t[2])


@pytest.mark.parametrize("shape", [CUBE, SPHERE, CYLINDER])
def test_random_rays_hit_the_surface_first(shape):
    """Hits lie on the surface; no sample point before the hit (or on a missing ray) is inside the solid."""
    rng = np.random.default_rng(shape)
    center, size, yaw = np.array([0.3, -0.2, 0.7]), 0.7, 1.1
    o = rng.uniform(-4, 4, (2000, 3))
    o[:, 2] = rng.uniform(2.5, 4, 2000)  # outside every solid
    target = center + rng.uniform(-1.2, 1.2, (2000, 3))
    o, d = rays(o, target - o)
    t, part = intersect(shape, o, d, center, size, yaw)

    c, s = np.cos(yaw), np.sin(yaw)

    def level(p):  # < 0 inside the solid, 0 on its surface, > 0 outside
        q = p - center
        if shape == SPHERE:
            return np.sqrt((q**2).sum(-1)) - size
        if shape == CYLINDER:
            return np.maximum(np.hypot(q[..., 0], q[..., 1]) - size, np.abs(q[..., 2]) - size)
        lx, ly = c * q[..., 0] + s * q[..., 1], -s * q[..., 0] + c * q[..., 1]
        return np.maximum(np.maximum(np.abs(lx), np.abs(ly)), np.abs(q[..., 2])) - size

    hit = np.isfinite(t)
    assert 0.2 < hit.mean() < 0.95
    samples = np.linspace(0, 1, 400)[None, :, None]
    far = np.where(hit, t, 12.0)[:, None, None]
    path = o[:, None] + samples * (far - 1e-4) * d[:, None]  # strictly before the hit
    assert (level(path) > 0).all()
    p = o[hit] + t[hit, None] * d[hit]
    np.testing.assert_allclose(level(p), 0.0, atol=1e-5)  # the hit point is on the surface
    n = surface_normal(shape, p, part[hit], center, size, yaw)
    np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0, atol=1e-5)
    assert (np.einsum("ij,ij->i", n, d[hit]) < 1e-6).all()  # entering: the normal faces the ray


# --- camera ------------------------------------------------------------------------------------------------------


def test_camera_projection_inverts_ray_directions():
    pos = np.array([7.2, -6.8, 5.6])
    cam = Camera(position=pos, rotation=look_at(pos, np.zeros(3)))
    u = np.array([0.5, 100.25, 319.5, 160.0])
    v = np.array([0.5, 33.0, 239.5, 120.0])
    d = cam.ray_directions(320, 240, u, v).astype(np.float64)
    pu, pv, depth = cam.project(pos + 9.0 * d, 320, 240)
    np.testing.assert_allclose(pu, u, atol=1e-3)
    np.testing.assert_allclose(pv, v, atol=1e-3)
    assert (depth > 0).all()
    np.testing.assert_allclose(pu[3:], 160.0, atol=1e-3)  # the image centre looks at the origin
    np.testing.assert_allclose(cam.project(np.zeros((1, 3)), 320, 240)[0], 160.0, atol=1e-9)


def test_directions_are_the_published_clevr_values():
    np.testing.assert_allclose(DIRECTIONS["right"], [0.6563112735748291, 0.7544902563095093, 0.0], atol=1e-6)
    np.testing.assert_allclose(DIRECTIONS["behind"], [-0.754490315914154, 0.6563112735748291, 0.0], atol=1e-6)
    np.testing.assert_allclose(DIRECTIONS["left"], -np.asarray(DIRECTIONS["right"]), atol=0)
    assert DIRECTIONS["above"] == (0.0, 0.0, 1.0)


# --- vocabulary and placement rules ------------------------------------------------------------------------------


def test_vocabulary_matches_properties_json():
    props = json.loads(PROPERTIES_JSON.read_text())
    assert tuple(props["shapes"]) == SHAPE_NAMES and tuple(props["materials"]) == MATERIAL_NAMES
    assert tuple(props["colors"]) == COLOR_NAMES
    assert [tuple(c) for c in props["colors"].values()] == list(COLORS)
    assert tuple(props["sizes"]) == SIZE_NAMES and tuple(props["sizes"].values()) == SIZES
    assert (SHAPE_NAMES[CUBE], SHAPE_NAMES[SPHERE], SHAPE_NAMES[CYLINDER]) == ("cube", "sphere", "cylinder")


def test_placement_follows_clevr_rules():
    dirs = np.array([DIRECTIONS[k][:2] for k in ("right", "front")])
    for i in range(8):
        scene = sample_scene(scene_rng(5, i), width=64, height=48)
        n = scene.num_objects
        assert 3 <= n <= 10
        np.testing.assert_allclose(scene.position[:, 2], scene.radius)  # resting on the ground
        assert (np.abs(scene.position[:, :2]) <= 3).all() and ((scene.rotation >= 0) & (scene.rotation < 360)).all()
        for a in range(n):
            for b in range(a):
                delta = scene.position[a, :2] - scene.position[b, :2]
                assert np.hypot(*delta) - scene.radius[a] - scene.radius[b] >= MIN_DIST - 1e-9
                assert (np.abs(dirs @ delta) >= MARGIN - 1e-9).all()


# --- masks, visibility, pixel_coords -----------------------------------------------------------------------------


def test_masks_partition_pixels_and_objects_are_visible(small_scenes):
    threshold = min_pixels_for(160, 120)
    for rec in small_scenes:
        ids, objects = rec["mask"], rec["scene"]["objects"]
        assert ids.dtype == np.uint8 and ids.shape == (120, 160) and rec["image"].shape == (120, 160, 3)
        counts = np.bincount(ids.ravel(), minlength=len(objects) + 1)
        assert len(counts) == len(objects) + 1  # no id beyond the objects
        assert counts.sum() == ids.size
        assert [o["visible_pixels"] for o in objects] == counts[1:].tolist()
        assert (counts[1:] >= threshold).all()


def test_batch_masks_partition_pixels_exactly():
    batch = generate_clevr_batch(3, np.random.default_rng(0), 48, 32)
    mask = batch["mask"]
    assert mask.shape == (3, MAX_NUM_ENTITIES, 32, 48, 1) and mask.dtype == np.uint8
    assert set(np.unique(mask)) <= {0, 255}
    assert (mask.astype(np.int64).sum(axis=1) == 255).all()  # every pixel in exactly one entity
    n = (batch["shape"] > 0).sum(axis=1)
    for b in range(3):
        assert (mask[b, 1 : n[b] + 1].max(axis=(1, 2, 3)) == 255).all()  # each object has pixels
        assert not mask[b, n[b] + 1 :].any()
        np.testing.assert_array_equal(batch["visibility"][b], (np.arange(MAX_NUM_ENTITIES) <= n[b]).astype(np.float32))
    for key, dtype in [("x", np.float32), ("rotation", np.float32), ("pixel_coords", np.float32), ("color", np.uint8)]:
        assert batch[key].dtype == dtype and batch[key].shape[:2] == (3, MAX_NUM_ENTITIES)
    assert batch["image"].shape == (3, 32, 48, 3)
    assert ((batch["shape"] <= 3) & (batch["color"] <= 8) & (batch["size"] <= 2) & (batch["material"] <= 2)).all()


def test_pixel_coords_project_into_the_object(small_scenes):
    """pixel_coords is the object centre's projection: its pixel sees the object (or an occluder in front)."""
    children = np.random.default_rng(123).spawn(6)  # the generators small_scenes drew its scenes from
    for i, rec in enumerate(small_scenes):
        scene = sample_scene(children[i], width=160, height=120)
        assert scene.num_objects == len(rec["scene"]["objects"])
        for k, obj in enumerate(rec["scene"]["objects"]):
            px, py, depth = obj["pixel_coords"]
            col, row = min(px, 159), min(py, 119)
            d = scene.camera.ray_directions(160, 120, np.array([col + 0.5]), np.array([row + 0.5]))
            t, _ = intersect(
                int(scene.shape[k]),
                scene.camera.position[None],
                d,
                scene.position[k],
                float(scene.radius[k]),
                float(scene.yaw[k]),
            )
            assert np.isfinite(t[0]), f"scene {i} object {k}: ray through pixel_coords misses the object"
            seen = rec["mask"][row, col]
            assert seen > 0, f"scene {i} object {k}: background at its own centre"  # itself or an occluder
            assert 5.0 < depth < 20.0
        hits = [
            rec["mask"][min(o["pixel_coords"][1], 119), min(o["pixel_coords"][0], 159)] for o in rec["scene"]["objects"]
        ]
        assert sum(h == k + 1 for k, h in enumerate(hits)) >= len(hits) - 2  # occluded centres are the exception


def test_antialiasing_leaves_the_mask_alone():
    scene = sample_scene(scene_rng(1, 0), width=96, height=72)
    img_aa, ids_aa = render_scene(scene, 96, 72)
    img, ids = render_scene(scene, 96, 72, antialias=False)
    np.testing.assert_array_equal(ids_aa, ids)
    inner = ids == np.roll(ids, 1, 0)
    assert (img_aa != img).any()
    assert (img_aa[inner & (ids == 0)] == img[inner & (ids == 0)]).mean() > 0.9  # only edge pixels change


# --- JSON records ------------------------------------------------------------------------------------------------


def test_scene_json_fields_and_vocabulary(small_scenes):
    for i, rec in enumerate(small_scenes):
        s = json.loads(json.dumps(rec["scene"]))  # must survive a JSON round trip
        assert s["image_index"] == i and s["image_filename"] == f"CLEVR_new_{i:06d}.png" and s["split"] == "new"
        assert set(s["directions"]) == {"left", "right", "front", "behind", "above", "below"}
        assert set(s["relationships"]) == {"left", "right", "front", "behind"}
        for obj in s["objects"]:
            assert OBJECT_KEYS <= set(obj)
            assert obj["shape"] in SHAPE_NAMES and obj["color"] in COLOR_NAMES
            assert obj["material"] in MATERIAL_NAMES and obj["size"] in SIZE_NAMES
            assert len(obj["3d_coords"]) == 3 and obj["3d_coords"][2] == SIZES[SIZE_NAMES.index(obj["size"])]
            assert isinstance(obj["pixel_coords"][0], int) and isinstance(obj["pixel_coords"][1], int)
        rel, n = s["relationships"], len(s["objects"])
        for a in range(n):  # j left of i <=> i right of j
            for b in rel["left"][a]:
                assert a in rel["right"][b]
            assert a not in rel["left"][a]


def test_scene_json_is_read_by_the_clevr_reader(small_scenes):
    import slotattn.data.clevr as clevr
    for rec in small_scenes:
        target = clevr.scene_targets(rec["scene"])
        assert target[: len(rec["scene"]["objects"]), -1].tolist() == [1.0] * len(rec["scene"]["objects"])


# --- determinism, files ------------------------------------------------------------------------------------------


def test_generate_is_deterministic_by_rng_state():
    a = generate_clevr(2, np.random.default_rng(9), width=48, height=32)
    b = generate_clevr(2, np.random.default_rng(9), width=48, height=32)
    c = generate_clevr(2, np.random.default_rng(10), width=48, height=32)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x["image"], y["image"])
        np.testing.assert_array_equal(x["mask"], y["mask"])
        assert x["scene"] == y["scene"]
    assert a[0]["scene"] != c[0]["scene"]


def test_write_dataset_layout_and_independence_from_workers(tmp_path):
    calls = []
    p1 = write_clevr_dataset(tmp_path / "w1", 4, seed=3, width=48, height=32, workers=1, progress=calls.append)
    p2 = write_clevr_dataset(tmp_path / "w2", 4, seed=3, width=48, height=32, workers=2, date="01/01/2020")
    assert sum(calls) == 4
    assert p1 == tmp_path / "w1" / "scenes" / "CLEVR_train_scenes.json"
    s1, s2 = json.loads(p1.read_text()), json.loads(p2.read_text())
    assert s1["scenes"] == s2["scenes"] and s2["info"]["date"] == "01/01/2020" and s1["info"]["split"] == "train"
    for i in range(4):
        name = f"CLEVR_train_{i:06d}.png"
        assert s1["scenes"][i]["image_filename"] == name
        for sub in ("images", "masks"):
            assert (tmp_path / "w1" / sub / "train" / name).read_bytes() == (
                tmp_path / "w2" / sub / "train" / name
            ).read_bytes()
        ids = np.asarray(Image.open(tmp_path / "w1" / "masks" / "train" / name))
        assert ids.dtype == np.uint8 and ids.max() == len(s1["scenes"][i]["objects"])
        assert np.asarray(Image.open(tmp_path / "w1" / "images" / "train" / name)).shape == (32, 48, 3)
    # scene i depends only on (seed, i): a later start index reproduces the same image
    p3 = write_clevr_dataset(tmp_path / "w3", 1, seed=3, width=48, height=32, start_index=2)
    assert json.loads(p3.read_text())["scenes"][0] == s1["scenes"][2]


def test_tiny_scene_renders_in_well_under_a_second():
    scene = sample_scene(scene_rng(0, 0), width=64, height=48)
    start = time.process_time()  # CPU time: robust to other processes sharing the core
    render_scene(scene, 64, 48)
    assert time.process_time() - start < 1.0


def test_bad_arguments_raise():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="min_objects"):
        generate_clevr(1, rng, min_objects=0)
    with pytest.raises(ValueError, match="max_objects=11"):
        generate_clevr_batch(1, rng, max_objects=11)
    with pytest.raises(ValueError, match="num must be a positive integer"):
        generate_clevr(0, rng)
    with pytest.raises(TypeError, match="rng"):  # ours, or beartype's under the test-time type checks
        sample_scene(np.random.RandomState(0))
    with pytest.raises(ValueError, match="width must be an integer >= 8"):
        render_scene(sample_scene(rng, width=64, height=48), 4, 48)
    with pytest.raises(ValueError, match="workers"):
        write_clevr_dataset("unused", 1, seed=0, workers=0)

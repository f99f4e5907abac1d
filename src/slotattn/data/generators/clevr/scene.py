"""CLEVR scenes: vocabulary, camera and lights, and object placement with the rules of the official generator.

Follows facebookresearch/clevr-dataset-gen ``image_generation/render_images.py`` (``render_scene``,
``add_random_objects``, ``compute_all_relationships``, ``check_visibility``) and ``utils.py`` (``add_object``,
``get_camera_coords``), with the vocabulary and RGB values of ``data/properties.json``. The base scene
(``data/base_scene.blend``) is binary; its camera and lamps are reconstructed in :data:`CAMERA_POSITION` and
:data:`LAMPS` (sources beside each constant).
"""

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from slotattn.data.generators.clevr.geometry import Camera, look_at

__all__ = [
    "CAMERA_JITTER",
    "CAMERA_POSITION",
    "COLORS",
    "COLOR_NAMES",
    "DIRECTIONS",
    "LAMPS",
    "LIGHT_JITTER",
    "MARGIN",
    "MATERIAL_NAMES",
    "MAX_RETRIES",
    "MIN_DIST",
    "MIN_PIXELS_PER_OBJECT",
    "SHAPE_NAMES",
    "SIZES",
    "SIZE_NAMES",
    "Lamp",
    "Scene",
    "compute_all_relationships",
    "min_pixels_for",
    "sample_layout",
    "scene_struct",
]

# --- vocabulary: data/properties.json, in file order (codes below are indices into these tuples) ---------------
SHAPE_NAMES: tuple[str, ...] = ("cube", "sphere", "cylinder")  # -> SmoothCube_v2, Sphere, SmoothCylinder
COLOR_NAMES: tuple[str, ...] = ("gray", "red", "blue", "green", "brown", "purple", "cyan", "yellow")
COLORS: tuple[tuple[int, int, int], ...] = (
    (87, 87, 87),
    (173, 35, 35),
    (42, 75, 215),
    (29, 105, 20),
    (129, 74, 25),
    (129, 38, 192),
    (41, 208, 208),
    (255, 238, 51),
)
MATERIAL_NAMES: tuple[str, ...] = ("rubber", "metal")  # -> Rubber, MyMetal
SIZE_NAMES: tuple[str, ...] = ("large", "small")
SIZES: tuple[float, ...] = (0.7, 0.35)  # the scale r of a unit model (radius 1, half side 1, half height 1)
# geometry's primitive codes CUBE, SPHERE, CYLINDER are indices into SHAPE_NAMES (0, 1, 2); a test checks it

# --- render_images.py argument defaults ---------------------------------------------------------------------------
MIN_DIST = 0.25  # --min_dist: minimum gap between the objects' circles (dist - r - rr)
MARGIN = 0.4  # --margin: minimum separation along the left/right and front/behind axes
MIN_PIXELS_PER_OBJECT = 200  # --min_pixels_per_object, at the generator's default 320x240 (see min_pixels_for)
MAX_RETRIES = 50  # --max_retries: placement tries per object before all objects are placed again
CAMERA_JITTER = 0.5  # --camera_jitter: each coordinate moves by U(-0.5, 0.5)
LIGHT_JITTER = 1.0  # --key/fill/back_light_jitter: each coordinate moves by U(-1, 1)
_REFERENCE_PIXELS = 320 * 240  # the resolution MIN_PIXELS_PER_OBJECT refers to
_MAX_SCENE_RESTARTS = 10_000  # a scene that never fits is a bug, not bad luck

# --- base_scene.blend, reconstructed ---------------------------------------------------------------------------
# Camera: Blender's default camera position (also kubric's CLEVR worker), lens 35 mm / sensor 32 mm, aimed at the
# origin by a Track-To constraint. Checked against a real CLEVR v1.0 scene (CLEVR_val_000000, 5 objects): the
# pixel_coords of all objects are reproduced to 0.12 px RMS (integer rounding) with look-at-origin from the
# jittered position, and 2.7 px RMS if the orientation were kept fixed.
CAMERA_POSITION = (7.48113, -6.50764, 5.34367)


@dataclass(frozen=True)
class Lamp:
    """One light of the base scene.

    Attributes:
        name: the Blender object name.
        position: world position before jitter (a directional light's direction is position -> origin).
        color: linear RGB tint in [0, 1].
        power: relative strength (area lamps: W, sun: W/m^2 in kubric's reconstruction).
        directional: True for the sun (no distance fall-off, not jittered by render_images.py).
    """

    name: str
    position: tuple[float, float, float]
    color: tuple[float, float, float]
    power: float
    directional: bool = False


def _hex(value: int) -> tuple[float, float, float]:
    return ((value >> 16) / 255.0, ((value >> 8) & 255) / 255.0, (value & 255) / 255.0)


# Positions, tints and powers of base_scene.blend as kubric reconstructs them (google-research/kubric
# ``kubric/assets/utils.py`` ``get_clevr_lights``): key and fill are 0.5 x 0.5 area lamps, plus a sun.
LAMPS: tuple[Lamp, ...] = (
    Lamp("Lamp_Key", (6.44671, -2.90517, 4.2584), _hex(0xFFEDD0), 100.0),
    Lamp("Lamp_Back", (-1.1685, 2.64602, 5.81574), (1.0, 1.0, 1.0), 50.0),
    Lamp("Lamp_Fill", (-4.67112, -4.0136, 3.01122), _hex(0xC2D0FF), 30.0),
    Lamp("Sun", (11.6608, -6.62799, 25.8232), (1.0, 1.0, 1.0), 0.45, directional=True),
)


def _plane_directions() -> dict[str, tuple[float, float, float]]:
    """The six directions of render_images.py, from the un-jittered camera.

    The official code jitters ``camera.location`` and then reads ``camera.matrix_world``, which Blender has not
    updated yet, so every CLEVR scene stores the directions of the base camera: right = (0.6563, 0.7545, 0),
    behind = (-0.7545, 0.6563, 0) in all published scene files.
    """
    rot = look_at(np.asarray(CAMERA_POSITION), np.zeros(3))
    behind = -rot[:, 2] * np.array([1.0, 1.0, 0.0])
    left = -rot[:, 0] * np.array([1.0, 1.0, 0.0])
    behind /= np.linalg.norm(behind)
    left /= np.linalg.norm(left)
    up = (0.0, 0.0, 1.0)
    as_tuple = lambda v: tuple(float(x) for x in v)
    return {
        "behind": as_tuple(behind),
        "front": as_tuple(-behind),
        "left": as_tuple(left),
        "right": as_tuple(-left),
        "above": up,
        "below": (-0.0, -0.0, -1.0),
    }


DIRECTIONS: dict[str, tuple[float, float, float]] = _plane_directions()


def min_pixels_for(width: int, height: int, min_pixels: int = MIN_PIXELS_PER_OBJECT) -> int:
    """The visible-pixel threshold at ``width`` x ``height``: ``min_pixels`` scaled by area from 320x240.

    Args:
        width: image width.
        height: image height.
        min_pixels: the threshold at 320x240 (official default 200).

    Returns:
        ceil(min_pixels * width * height / (320 * 240)), at least 1.
    """
    return max(1, int(np.ceil(min_pixels * width * height / _REFERENCE_PIXELS)))


@dataclass
class Scene:
    """One sampled scene: camera, lamps and objects (all arrays have one row per object).

    Attributes:
        camera: the jittered camera.
        lamp_positions: float64 [4, 3] world positions of :data:`LAMPS` after jitter.
        shape: int64 [n] codes into :data:`SHAPE_NAMES`.
        size: int64 [n] codes into :data:`SIZE_NAMES`.
        material: int64 [n] codes into :data:`MATERIAL_NAMES`.
        color: int64 [n] codes into :data:`COLOR_NAMES`.
        position: float64 [n, 3] object centres; z = r, so every object rests on the ground.
        rotation: float64 [n] the ``rotation`` field of the JSON, degrees in [0, 360).
        visible_pixels: int64 [n] pixels of each object in the exact (centre-ray) id map at the sampling
            resolution, or empty if not checked.
    """

    camera: Camera
    lamp_positions: np.ndarray
    shape: np.ndarray
    size: np.ndarray
    material: np.ndarray
    color: np.ndarray
    position: np.ndarray
    rotation: np.ndarray
    visible_pixels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def num_objects(self) -> int:
        return len(self.shape)

    @property
    def radius(self) -> np.ndarray:
        """float64 [n]: the size scalar r of each object."""
        return np.asarray(SIZES, np.float64)[self.size]

    @property
    def yaw(self) -> np.ndarray:
        """float64 [n]: the rendered rotation about z in radians.

        ``utils.add_object`` assigns the degree value ``theta`` to ``rotation_euler[2]``, which Blender reads as
        radians; CLEVR's renders therefore show a rotation of ``theta`` radians while the JSON stores ``theta``.
        We reproduce that, so the field relates to the pixels exactly as in the published data.
        """
        return np.asarray(self.rotation, np.float64)


def _sample_camera_and_lamps(rng: np.random.Generator) -> tuple[Camera, np.ndarray]:
    """Jitter the camera, then key, back and fill lamps (render_images.py's order; the sun stays put)."""
    rand = lambda amount: 2.0 * amount * (rng.random(3) - 0.5)  # official rand(L)
    cam_pos = np.asarray(CAMERA_POSITION) + rand(CAMERA_JITTER)
    camera = Camera(position=cam_pos, rotation=look_at(cam_pos, np.zeros(3)))
    lamps = np.array([lamp.position for lamp in LAMPS], dtype=np.float64)
    for name in ("Lamp_Key", "Lamp_Back", "Lamp_Fill"):
        idx = [lamp.name for lamp in LAMPS].index(name)
        lamps[idx] += rand(LIGHT_JITTER)
    return camera, lamps


def _place_objects(rng: np.random.Generator, num_objects: int) -> dict[str, np.ndarray] | None:
    """One pass of ``add_random_objects`` without the visibility check; None when an object exceeds its retries.

    Per object, in the official order: size; positions x, y ~ U(-3, 3) until the object keeps ``MIN_DIST`` from
    every earlier one (between circles of radius r; the official cube shrink by sqrt(2) never fires because
    the cube's model is named SmoothCube_v2, so the cube's r is its half side) and ``MARGIN`` along the
    left/right and front/behind axes; then shape, colour, rotation theta ~ U(0, 360) and material.
    """
    dirs = np.array([DIRECTIONS[k][:2] for k in ("left", "right", "front", "behind")])  # (4, 2)
    out = {k: np.zeros(num_objects, np.int64) for k in ("shape", "size", "material", "color")}
    xy = np.zeros((num_objects, 2))
    rotation = np.zeros(num_objects)
    for i in range(num_objects):
        out["size"][i] = rng.integers(len(SIZES))
        r = SIZES[out["size"][i]]
        for _ in range(MAX_RETRIES):
            cand = rng.uniform(-3.0, 3.0, size=2)
            delta = cand - xy[:i]  # (i, 2)
            dist_ok = np.all(np.hypot(delta[:, 0], delta[:, 1]) - r - np.asarray(SIZES)[out["size"][:i]] >= MIN_DIST)
            margins = delta @ dirs.T  # (i, 4)
            margin_ok = not np.any((margins > 0) & (margins < MARGIN))
            if dist_ok and margin_ok:
                break
        else:
            return None
        xy[i] = cand
        out["shape"][i] = rng.integers(len(SHAPE_NAMES))
        out["color"][i] = rng.integers(len(COLOR_NAMES))
        rotation[i] = 360.0 * rng.random()
        out["material"][i] = rng.integers(len(MATERIAL_NAMES))
    radius = np.asarray(SIZES)[out["size"]]
    out["position"] = np.concatenate([xy, radius[:, None]], axis=1)
    out["rotation"] = rotation
    return out


def sample_layout(
    rng: np.random.Generator,
    num_objects: int,
    visible_pixels_fn: Any = None,
    min_pixels: int = 0,
) -> Scene:
    """Sample camera, lamps and objects; re-place all objects until every one is visible enough.

    Args:
        rng: the only source of randomness; advanced by the call.
        num_objects: number of objects (the official code draws it once per image and keeps it across retries).
        visible_pixels_fn: ``fn(scene) -> int64 [n]`` visible pixels per object (the exact id map), or None to
            skip the visibility check.
        min_pixels: every object needs at least this many visible pixels (official ``check_visibility``).

    Returns:
        The scene, with ``visible_pixels`` filled in when ``visible_pixels_fn`` is given.

    Raises:
        RuntimeError: no valid layout after many restarts (cannot happen with CLEVR's defaults).
    """
    camera, lamps = _sample_camera_and_lamps(rng)
    for _ in range(_MAX_SCENE_RESTARTS):
        placed = _place_objects(rng, num_objects)
        if placed is None:  # an object exceeded MAX_RETRIES: start the whole scene's objects over
            continue
        scene = Scene(camera=camera, lamp_positions=lamps, **placed)
        if visible_pixels_fn is None:
            return scene
        visible = np.asarray(visible_pixels_fn(scene), np.int64)
        if np.all(visible >= min_pixels):
            scene.visible_pixels = visible
            return scene
    raise RuntimeError(f"sample_layout: no valid layout of {num_objects} objects after {_MAX_SCENE_RESTARTS} restarts")


def compute_all_relationships(objects: list[dict[str, Any]], eps: float = 0.2) -> dict[str, list[list[int]]]:
    """``relationships`` of render_images.py: j is in out[name][i] when (c_j - c_i) . direction > eps.

    Args:
        objects: scene objects with ``3d_coords``.
        eps: the official threshold (0.2).

    Returns:
        For "left", "right", "front", "behind": one sorted index list per object.
    """
    coords = np.array([o["3d_coords"] for o in objects], np.float64).reshape(-1, 3)
    out = {}
    for name in ("behind", "front", "left", "right"):  # dict order of the official directions minus above/below
        dots = (coords[None, :, :] - coords[:, None, :]) @ np.asarray(DIRECTIONS[name])  # [i, j] = (c_j - c_i).dir
        np.fill_diagonal(dots, -np.inf)
        out[name] = [np.flatnonzero(row > eps).tolist() for row in dots]
    return out


def scene_struct(
    scene: Scene, split: str, index: int, width: int, height: int, filename_prefix: str = "CLEVR"
) -> dict[str, Any]:
    """The JSON record of one scene, with the fields (and quirks) of render_images.py.

    ``pixel_coords`` is ``utils.get_camera_coords``: (round(u), round(v), depth) of the object centre at
    ``width`` x ``height``. Besides the official fields each object carries ``visible_pixels`` (our addition: its
    pixel count in the exact mask, at this resolution, when the scene was checked).

    Args:
        scene: the sampled scene.
        split: split name stored in the record and the filename.
        index: image index.
        width: image width (for pixel_coords).
        height: image height.
        filename_prefix: the official ``--filename_prefix``.

    Returns:
        A JSON-serialisable dict: split, image_index, image_filename, objects, directions, relationships.
    """
    u, v, depth = scene.camera.project(scene.position, width, height)
    objects = []
    for k in range(scene.num_objects):
        obj = {
            "shape": SHAPE_NAMES[scene.shape[k]],
            "size": SIZE_NAMES[scene.size[k]],
            "material": MATERIAL_NAMES[scene.material[k]],
            "3d_coords": [float(c) for c in scene.position[k]],
            "rotation": float(scene.rotation[k]),
            "pixel_coords": [int(np.round(u[k])), int(np.round(v[k])), float(depth[k])],
            "color": COLOR_NAMES[scene.color[k]],
        }
        if len(scene.visible_pixels) == scene.num_objects:
            obj["visible_pixels"] = int(scene.visible_pixels[k])
        objects.append(obj)
    return {
        "split": split,
        "image_index": int(index),
        "image_filename": f"{filename_prefix}_{split}_{index:06d}.png",
        "objects": objects,
        "directions": {k: list(v) for k, v in DIRECTIONS.items()},
        "relationships": compute_all_relationships(objects),
    }

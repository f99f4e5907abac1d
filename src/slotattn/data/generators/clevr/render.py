"""Shading of CLEVR scenes by vectorised ray casting: diffuse + specular, shadows, metal reflections, anti-aliasing.

Stands in for the Blender/Cycles render of clevr-dataset-gen ``render_images.py`` (512 path-traced samples). We
cast one centre ray per pixel, which gives the exact instance id map (the official ``render_shadeless`` pass:
no anti-aliasing, one id per pixel). Shading is local lighting from the base scene's lamps (key, back, fill as
point lights with inverse-square fall-off, the sun as a directional light) with shadow rays, a hemisphere
ambient term with analytic occlusion near objects, and one mirror bounce for metal. Soft shadows come from
blurring hard shadows within each surface; anti-aliasing re-shades only the pixels on silhouettes, face edges
and strong contrasts with four extra rotated-grid samples each. Constants: :class:`Shading`, fitted to the real
renders (docs/clevr_renderer.md).
"""

from dataclasses import dataclass

import numpy as np
from jaxtyping import Int, UInt8
from scipy.ndimage import gaussian_filter, zoom

from slotattn.data.generators.clevr.geometry import (
    CUBE,
    SPHERE,
    bounding_radius,
    intersect,
    surface_normal,
)
from slotattn.data.generators.clevr.scene import COLORS, LAMPS, Scene

__all__ = ["DEFAULT_SHADING", "Shading", "render", "trace_ids", "visible_pixel_counts"]

_EPS = 1e-3  # offset of secondary ray origins along the normal (scene units: CLEVR objects are 0.35-0.7)
# Rotated-grid 4x supersampling pattern (offsets from the pixel centre, in pixels).
_RGSS = np.array([[0.125, 0.375], [0.375, -0.125], [-0.125, -0.375], [-0.375, 0.125]])


@dataclass(frozen=True)
class Shading:
    """Constants of the shading model, calibrated against the 8 real renders of clevr-dataset-gen (see docs).

    Radiance is linear RGB; the output is sRGB-encoded, as Blender 2.78's default view transform does.

    Attributes:
        ground_albedo: grey of the ground plane.
        lamp_scale: radiance per unit lamp power at unit distance (area lamps as points, fall-off 1/d^2).
        lamp_emission_power: exponent of the lamps' cosine emission profile (each lamp faces the origin).
        sun_scale: irradiance per unit sun power.
        sky: radiance of the environment above the horizon (CLEVR's world is nearly black).
        sky_glow: extra sky radiance towards the back lamp, ``sky_glow * max(0, cos)^sky_glow_power``: the
            blurred glossy image of that large lamp, which makes metal tops and upper rims bright in CLEVR.
        sky_glow_power: sharpness of that glow.
        ground_far: radiance of the environment below the horizon, for metal seen in a mirror (no second bounce).
        ambient: ambient irradiance from above (stand-in for indirect light from the sky side).
        bounce: ambient irradiance from below (light bounced off the ground onto object sides).
        ao_strength: weight of the analytic occlusion of ambient light near objects.
        rubber_albedo: factor on the colour of rubber (Cycles' rubber shader keeps less than its base colour).
        rubber_specular: weight of rubber's soft highlight.
        rubber_shininess: Blinn-Phong exponent of rubber.
        metal_reflect: fraction of the mirrored radiance a metal reflects (tinted by its colour).
        metal_diffuse: diffuse fraction of metal.
        metal_specular: weight of the lamps' highlight on metal.
        metal_shininess: Blinn-Phong exponent of the metal highlight.
        shadow_blur: standard deviation (pixels at 320 px width) of the blur that softens shadows.
        exposure: overall scale applied before the sRGB encoding.
    """

    ground_albedo: float = 0.5
    lamp_scale: float = 0.0913
    lamp_emission_power: float = 0.954
    sun_scale: float = 0.155
    sky: float = 0.012
    sky_glow: float = 0.5
    sky_glow_power: float = 6.0
    ground_far: float = 0.14
    ambient: float = 0.21
    bounce: float = 0.21
    ao_strength: float = 1.0
    rubber_albedo: float = 0.66
    rubber_specular: float = 0.05
    rubber_shininess: float = 18.0
    metal_reflect: float = 0.9
    metal_diffuse: float = 0.13
    metal_specular: float = 0.3
    metal_shininess: float = 1000.0
    shadow_blur: float = 2.5
    exposure: float = 1.0


DEFAULT_SHADING = Shading()


@dataclass
class _Prepared:
    """Per-scene arrays used by every pass (index 0 = ground, k = object k)."""

    shape: list[int]
    center: np.ndarray  # (n, 3) float32
    size: list[float]
    yaw: list[float]
    bound: np.ndarray  # (n,) bounding-sphere radii
    ao_radius: np.ndarray  # (n,) radius of the sphere standing in for each object in the occlusion term
    albedo: np.ndarray  # (n + 1, 3) linear
    metal: np.ndarray  # (n + 1,) bool
    lamp_pos: np.ndarray  # (L, 3) float32 (directional lamps: unit direction towards the light)
    lamp_dir: np.ndarray  # (L,) bool
    lamp_rgb: np.ndarray  # (L, 3) power * colour
    lamp_normal: np.ndarray  # (L, 3) unit emission axis (towards the origin)
    glow_dir: np.ndarray  # (3,) unit direction from the origin to the back lamp


def _prepare(scene: Scene) -> _Prepared:
    n = scene.num_objects
    radius = scene.radius
    albedo = np.zeros((n + 1, 3), np.float32)
    albedo[1:] = np.asarray(COLORS, np.float32)[scene.color] / 255.0  # properties.json RGB / 255, used as linear
    metal = np.zeros(n + 1, bool)
    metal[1:] = scene.material == 1
    shape = [int(s) for s in scene.shape]
    bound = np.array([bounding_radius(s, float(r)) for s, r in zip(shape, radius)], np.float32)
    ao_scale = {SPHERE: 1.0, CUBE: 1.15}
    ao_radius = np.array([r * ao_scale.get(s, 1.1) for s, r in zip(shape, radius)], np.float32)
    lamp_pos = np.asarray(scene.lamp_positions, np.float32).copy()
    lamp_dir = np.array([lamp.directional for lamp in LAMPS])
    lamp_pos[lamp_dir] /= np.linalg.norm(lamp_pos[lamp_dir], axis=1, keepdims=True)
    lamp_rgb = np.array([np.multiply(lamp.color, lamp.power) for lamp in LAMPS], np.float32)
    lamp_normal = -lamp_pos / np.linalg.norm(lamp_pos, axis=1, keepdims=True)
    return _Prepared(
        shape=shape,
        center=np.asarray(scene.position, np.float32),
        size=[float(r) for r in radius],
        yaw=[float(y) for y in scene.yaw],
        bound=bound,
        ao_radius=ao_radius,
        albedo=albedo,
        metal=metal,
        lamp_pos=lamp_pos,
        lamp_dir=lamp_dir,
        lamp_rgb=lamp_rgb,
        lamp_normal=lamp_normal.astype(np.float32),
        glow_dir=-lamp_normal[[lamp.name for lamp in LAMPS].index("Lamp_Back")].astype(np.float32),
    )


def _environment(prep: _Prepared, params: Shading, dirs: np.ndarray) -> np.ndarray:
    """Radiance [N, 3] of the environment in directions ``dirs``: far ground below the horizon, sky above."""
    glow = params.sky_glow * np.clip(dirs @ prep.glow_dir, 0.0, 1.0) ** params.sky_glow_power
    env = np.where(dirs[:, 2] < 0, params.ground_far, params.sky + glow).astype(np.float32)
    return np.repeat(env[:, None], 3, axis=1)


def _trace(
    prep: _Prepared,
    origins: np.ndarray,
    dirs: np.ndarray,
    tmax: np.ndarray | None = None,
    any_hit: bool = False,
    skip: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest object hit of each ray: (t float32 [N], object index int16 [N] with 0 = none, part int8 [N]).

    ``origins`` is [N, 3] or a single [3] origin shared by all rays. Objects are culled per ray with their
    bounding spheres before the exact test. With ``any_hit`` (shadow rays) a ray stops at its first blocker.
    ``skip`` [N] names the object each ray leaves (0 = none): CLEVR's objects are convex, so a ray leaving a
    surface outwards cannot meet it again, and skipping it avoids float32 self-hits ("shadow acne").
    """
    n = len(dirs)
    t_best = np.full(n, np.inf, np.float32) if tmax is None else np.array(tmax, np.float32, copy=True)
    idx = np.zeros(n, np.int16)
    part = np.full(n, -1, np.int8)
    num_objects = len(prep.shape)
    if n == 0 or num_objects == 0:
        return t_best, idx, part
    # Bounding-sphere culling for all objects at once: tca = distance along the ray to the point nearest the
    # centre, d2 = squared distance of the centre from the ray (one matrix product per term; rows = objects,
    # so each object's candidates are a contiguous row).
    centers = prep.center
    if origins.ndim == 1:
        oc = centers - origins  # (K, 3)
        tca = oc @ dirs.T  # (K, N)
        d2 = np.einsum("kj,kj->k", oc, oc)[:, None] - tca * tca
    else:
        tca = centers @ dirs.T - np.einsum("ij,ij->i", origins, dirs)  # (K, N)
        oc2 = np.einsum("kj,kj->k", centers, centers)[:, None] - 2.0 * (centers @ origins.T)
        oc2 += np.einsum("ij,ij->i", origins, origins)
        d2 = oc2 - tca * tca
    r = prep.bound + 0.01  # slack for float32 cancellation in d2
    cand = d2 <= (r * r)[:, None]
    cand &= tca > -r[:, None]
    if tmax is not None:
        cand &= tca < t_best + r[:, None]
    if skip is not None:
        own = np.flatnonzero(skip > 0)
        cand[skip[own] - 1, own] = False
    for k in range(num_objects):
        sel = np.flatnonzero(cand[k])
        if sel.size == 0:
            continue
        sel = sel[tca[k, sel] - r[k] < t_best[sel]]
        if any_hit:
            sel = sel[idx[sel] == 0]
        if sel.size == 0:
            continue
        o_sel = np.broadcast_to(origins, (sel.size, 3)) if origins.ndim == 1 else origins[sel]
        t, p = intersect(prep.shape[k], o_sel, dirs[sel], prep.center[k], prep.size[k], prep.yaw[k], 1e-4)
        closer = t < t_best[sel]
        hit = sel[closer]
        t_best[hit] = t[closer]
        idx[hit] = k + 1
        part[hit] = p[closer]
    return t_best, idx, part


def _normals(prep: _Prepared, points: np.ndarray, idx: np.ndarray, part: np.ndarray) -> np.ndarray:
    """Unit normals at hit points (ground: +z)."""
    normals = np.zeros_like(points)
    normals[:, 2] = 1.0
    for k in range(len(prep.shape)):
        sel = np.flatnonzero(idx == k + 1)
        if sel.size:
            normals[sel] = surface_normal(
                prep.shape[k], points[sel], part[sel], prep.center[k], prep.size[k], prep.yaw[k]
            )
    return normals


def _visibility(prep: _Prepared, points: np.ndarray, normals: np.ndarray, own: np.ndarray) -> np.ndarray:
    """float32 [N, L] 1 where lamp l is unblocked from the point (hard shadows), else 0.

    Shadow rays of a point lamp are cast from the lamp towards the points, so they share one origin and the
    culling is one matrix-vector product per object; the sun's rays share one direction instead. ``own`` [N] is
    the object each point lies on (0 = ground), skipped by its own shadow rays.
    """
    vis = np.ones((len(points), len(prep.lamp_pos)), np.float32)
    if len(points) == 0 or not prep.shape:
        return vis
    for l in range(len(prep.lamp_pos)):
        if prep.lamp_dir[l]:
            facing = np.flatnonzero(normals @ prep.lamp_pos[l] > 0)  # back-facing points are unlit anyway
            if facing.size == 0:
                continue
            origins = points[facing] + _EPS * normals[facing]
            dirs = np.broadcast_to(prep.lamp_pos[l], origins.shape)
            _, idx, _ = _trace(prep, origins, dirs, None, any_hit=True, skip=own[facing])
        else:
            delta = points - prep.lamp_pos[l]  # lamp -> point
            facing = np.flatnonzero(np.einsum("ij,ij->i", delta, normals) < 0)
            if facing.size == 0:
                continue
            delta = delta[facing]
            dist = np.sqrt(np.einsum("ij,ij->i", delta, delta))
            dirs = delta / dist[:, None]
            _, idx, _ = _trace(prep, prep.lamp_pos[l], dirs, dist - _EPS, any_hit=True, skip=own[facing])
        vis[facing[idx > 0], l] = 0.0
    return vis


def _lamp_visibility(
    prep: _Prepared,
    points: np.ndarray,
    normals: np.ndarray,
    own: np.ndarray,
    given: np.ndarray | None,
    depth: int,
) -> np.ndarray:
    """[N, L] visibilities: ``given`` rows where they are not NaN, else shadow rays (at ``depth`` 0) or 1.

    Points seen in a mirror (``depth`` > 0) are not shadowed: reflected hard shadow edges turn into streaks on
    curved metal, where Cycles' area lamps and glossy blur leave smooth gradients.
    """
    if given is None:
        given = np.full((len(points), len(prep.lamp_pos)), np.nan, np.float32)
    vis = np.array(given, np.float32, copy=True)
    need = np.flatnonzero(np.isnan(vis[:, 0]))
    if need.size:
        if depth == 0:
            vis[need] = _visibility(prep, points[need], normals[need], own[need])
        else:
            vis[need] = 1.0
    return vis


def _ambient_occlusion(prep: _Prepared, points: np.ndarray, normals: np.ndarray, own: np.ndarray) -> np.ndarray:
    """float32 [N] fraction of ambient light left after occlusion by objects approximated as spheres.

    A sphere of radius r at distance D, seen at angle theta from the normal, blocks (r / D)^2 cos(theta) of the
    cosine-weighted hemisphere; contributions add and are clipped to [0, 1].
    """
    occ = np.zeros(len(points), np.float32)
    for k in range(len(prep.shape)):
        r = prep.ao_radius[k]
        delta = prep.center[k] - points
        d2 = np.einsum("ij,ij->i", delta, delta)
        near = np.flatnonzero((d2 < (4.0 * r) ** 2) & (own != k + 1))
        if near.size == 0:
            continue
        d2n = np.maximum(d2[near], r * r)
        cos = np.einsum("ij,ij->i", delta[near], normals[near]) / np.sqrt(d2n)
        occ[near] += r * r / d2n * np.clip(cos, 0.0, 1.0)
    return np.clip(1.0 - occ, 0.0, 1.0)


def _ground_radiance(prep: _Prepared, params: Shading, p: np.ndarray, vis: np.ndarray) -> np.ndarray:
    """Linear radiance [M, 3] of ground points (normal +z, diffuse only)."""
    irr = np.zeros((len(p), 3), np.float32)
    for l in range(len(prep.lamp_pos)):
        if prep.lamp_dir[l]:
            e = params.sun_scale * max(float(prep.lamp_pos[l, 2]), 0.0) * vis[:, l]
        else:
            delta = prep.lamp_pos[l] - p
            dist2 = np.einsum("ij,ij->i", delta, delta)
            inv = 1.0 / np.sqrt(dist2)
            emit = np.clip(-(delta @ prep.lamp_normal[l]) * inv, 0.0, 1.0) ** params.lamp_emission_power
            e = params.lamp_scale * emit * np.clip(delta[:, 2] * inv, 0.0, 1.0) / dist2 * vis[:, l]
        irr += e[:, None] * prep.lamp_rgb[l]
    # ambient from above, occluded near objects: sphere k blocks (r / D)^2 cos(theta) of the hemisphere
    occ = np.zeros(len(p), np.float32)
    for k in range(len(prep.shape)):
        r = prep.ao_radius[k]
        c = prep.center[k]
        d2 = (p[:, 0] - c[0]) ** 2 + (p[:, 1] - c[1]) ** 2 + c[2] * c[2]
        near = np.flatnonzero(d2 < 16.0 * r * r)
        if near.size:
            d2n = d2[near]
            occ[near] += r * r * c[2] / (d2n * np.sqrt(d2n))
    ambient = params.ambient * (1.0 - params.ao_strength * np.clip(occ, 0.0, 1.0))
    return params.ground_albedo * (irr + ambient[:, None])


def _object_radiance(
    prep: _Prepared,
    params: Shading,
    p: np.ndarray,
    d: np.ndarray,
    ids: np.ndarray,
    part: np.ndarray,
    depth: int,
    vis: np.ndarray | None = None,
) -> np.ndarray:
    """Linear radiance [M, 3] of object points hit by rays with directions ``d`` (``vis``: see _lamp_visibility)."""
    nrm = _normals(prep, p, ids, part)
    vis = _lamp_visibility(prep, p, nrm, ids, vis, depth)
    albedo = prep.albedo[ids]
    metal = prep.metal[ids]
    view = -d
    diffuse_irr = np.zeros((len(p), 3), np.float32)
    spec = np.zeros((len(p), 3), np.float32)
    shininess = np.where(metal, params.metal_shininess, params.rubber_shininess).astype(np.float32)
    for l in range(len(prep.lamp_pos)):
        if prep.lamp_dir[l]:
            w = np.broadcast_to(prep.lamp_pos[l], p.shape)
            power = np.full(len(p), params.sun_scale, np.float32)
        else:
            delta = prep.lamp_pos[l] - p
            dist2 = np.einsum("ij,ij->i", delta, delta)
            w = delta / np.sqrt(dist2)[:, None]
            emit = np.clip(-(w @ prep.lamp_normal[l]), 0.0, 1.0) ** params.lamp_emission_power
            power = params.lamp_scale * emit / dist2
        cos_i = np.clip(np.einsum("ij,ij->i", nrm, w), 0.0, 1.0)
        e = (power * cos_i * vis[:, l])[:, None] * prep.lamp_rgb[l]  # (M, 3) irradiance
        diffuse_irr += e
        if depth > 0:  # highlights seen in a mirror would add speckles that Cycles' glossy blur smooths away
            continue
        half = w + view
        half /= np.maximum(np.sqrt(np.einsum("ij,ij->i", half, half)), 1e-12)[:, None]
        n_h = np.clip(np.einsum("ij,ij->i", nrm, half), 0.0, 1.0)
        spec += e * ((shininess + 8.0) / 8.0 * n_h**shininess)[:, None]  # normalised Blinn-Phong

    nz = nrm[:, 2]
    ambient = params.ambient * (1.0 + nz) * 0.5 + params.bounce * (1.0 - nz) * 0.5
    ambient = ambient * (1.0 - params.ao_strength * (1.0 - _ambient_occlusion(prep, p, nrm, ids)))
    irr = diffuse_irr + ambient[:, None]

    rubber = ~metal
    out = np.empty((len(p), 3), np.float32)
    out[rubber] = params.rubber_albedo * albedo[rubber] * irr[rubber] + params.rubber_specular * spec[rubber]
    if metal.any():
        m = np.flatnonzero(metal)
        r_dir = d[m] - 2.0 * np.einsum("ij,ij->i", d[m], nrm[m])[:, None] * nrm[m]
        if depth == 0:  # one mirror bounce; what the mirrored ray sees is shaded without further bounces
            r_org = p[m] + _EPS * nrm[m]
            t2, idx2, part2 = _trace(prep, r_org, r_dir, skip=ids[m])
            reflected = _shade(prep, params, r_org, r_dir, t2, idx2, part2, None, depth + 1)
        else:  # a metal seen in a mirror reflects the environment without tracing
            reflected = _environment(prep, params, r_dir)
        out[m] = albedo[m] * (
            params.metal_reflect * reflected + params.metal_diffuse * irr[m] + params.metal_specular * spec[m]
        )
    return out


def _shade(
    prep: _Prepared,
    params: Shading,
    origins: np.ndarray,
    dirs: np.ndarray,
    t: np.ndarray,
    idx: np.ndarray,
    part: np.ndarray,
    vis_override: np.ndarray | None,
    depth: int,
) -> np.ndarray:
    """Linear radiance [N, 3] along rays whose nearest object hit is known (ground and sky are resolved here).

    ``vis_override`` [N, L] gives lamp visibilities (the blurred soft shadows); rows of NaN, or all rows when it
    is None, are resolved by :func:`_lamp_visibility`.
    """
    shared = origins.ndim == 1
    color = _environment(prep, params, dirs)  # rays that leave the scene; the rest is overwritten
    gnd = np.flatnonzero((idx == 0) & (dirs[:, 2] < 0))
    if gnd.size:
        o_g = np.broadcast_to(origins, (gnd.size, 3)) if shared else origins[gnd]
        t_g = -o_g[:, 2] / dirs[gnd, 2]
        keep = t_g > 0
        gnd, o_g, t_g = gnd[keep], o_g[keep], t_g[keep]
        p = o_g + t_g[:, None] * dirs[gnd]
        up = np.zeros_like(p)
        up[:, 2] = 1.0
        given = None if vis_override is None else vis_override[gnd]
        vis = _lamp_visibility(prep, p, up, np.zeros(gnd.size, np.int64), given, depth)
        color[gnd] = _ground_radiance(prep, params, p, vis)
    obj = np.flatnonzero(idx > 0)
    if obj.size:
        o_o = origins if shared else origins[obj]
        p = o_o + t[obj, None] * dirs[obj]
        given = None if vis_override is None else vis_override[obj]
        color[obj] = _object_radiance(prep, params, p, dirs[obj], idx[obj].astype(np.int64), part[obj], depth, given)
    return color


def _srgb(linear: np.ndarray, exposure: float) -> np.ndarray:
    x = np.clip(linear * exposure, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1.0 / 2.4) - 0.055)


def _primary_rays(scene: Scene, width: int, height: int) -> np.ndarray:
    v, u = np.mgrid[0:height, 0:width].astype(np.float64) + 0.5
    return scene.camera.ray_directions(width, height, u.ravel(), v.ravel())  # (H*W, 3)


def trace_ids(scene: Scene, width: int, height: int) -> UInt8[np.ndarray, "H W"]:
    """The exact instance id map: object k + 1 where pixel centres see object k, 0 for the ground.

    Args:
        scene: the scene.
        width: image width.
        height: image height.

    Returns:
        uint8 [H, W] ids (0 = background).
    """
    prep = _prepare(scene)
    _, idx, _ = _trace(prep, scene.camera.position.astype(np.float32), _primary_rays(scene, width, height))
    return idx.reshape(height, width).astype(np.uint8)


def visible_pixel_counts(scene: Scene, width: int, height: int) -> Int[np.ndarray, "n"]:
    """Pixels of each object in the exact id map (the official ``check_visibility`` count).

    Args:
        scene: the scene.
        width: image width.
        height: image height.

    Returns:
        int64 [n] counts, object order.
    """
    ids = trace_ids(scene, width, height)
    return np.bincount(ids.ravel(), minlength=scene.num_objects + 1)[1:].astype(np.int64)


def _edge_pixels(key: np.ndarray, image: np.ndarray, threshold: float) -> np.ndarray:
    """bool [H, W]: pixels whose 8-neighbourhood changes id/part, or changes brightness by more than ``threshold``."""
    pad_k = np.pad(key, 1, mode="edge")
    lum = image.mean(axis=2)
    pad_c = np.pad(lum, 1, mode="edge")
    h, w = key.shape
    edge = np.zeros((h, w), bool)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            if dy == 1 and dx == 1:
                continue
            edge |= pad_k[dy : dy + h, dx : dx + w] != key
            edge |= np.abs(pad_c[dy : dy + h, dx : dx + w] - lum) > threshold
    return edge


def _soft_shadows(
    prep: _Prepared,
    params: Shading,
    cam: np.ndarray,
    dirs: np.ndarray,
    t: np.ndarray,
    idx: np.ndarray,
    part: np.ndarray,
    height: int,
    width: int,
) -> np.ndarray:
    """[H*W, L] lamp visibilities of the centre-ray hits, softened in image space.

    Hard shadows are blurred with a Gaussian restricted to each surface (normalised convolution over the
    ground, and over each object's own pixels inside its bounding box), which stands in for the penumbrae of
    Cycles' area lamps without letting shadows bleed across silhouettes. The ground is sampled on every other
    row and column.
    """
    num_lamps = len(prep.lamp_pos)
    n = height * width
    sigma = params.shadow_blur * width / 320.0
    labels = idx.reshape(height, width)
    soft = np.ones((height, width, num_lamps), np.float32)

    # Ground: shadow rays from every other pixel in each direction (the blur hides the coarser sampling), a
    # normalised Gaussian over ground samples only, then bilinear upsampling to the full frame.
    lattice = np.zeros((height, width), bool)
    lattice[::2, ::2] = True
    ground = ((idx == 0) & (dirs[:, 2] < 0)).reshape(height, width)
    sel = np.flatnonzero((ground & lattice).ravel())
    p = cam + (-cam[2] / dirs[sel, 2])[:, None] * dirs[sel]
    up = np.zeros_like(p)
    up[:, 2] = 1.0
    coarse = np.ones((n, num_lamps), np.float32)
    coarse[sel] = _visibility(prep, p, up, np.zeros(sel.size, np.int64))
    coarse = coarse.reshape(height, width, num_lamps)[::2, ::2]
    weight = gaussian_filter(ground[::2, ::2].astype(np.float32), sigma / 2, mode="nearest")
    if (coarse < 1).any():
        h2, w2 = weight.shape
        for l in range(num_lamps):
            blurred = gaussian_filter(coarse[..., l] * ground[::2, ::2], sigma / 2, mode="nearest")
            half = np.where(weight > 1e-3, blurred / np.maximum(weight, 1e-3), 1.0)
            full = zoom(half, (height / h2, width / w2), order=1, mode="nearest", grid_mode=True)
            soft[..., l] = np.where(ground, full[:height, :width], 1.0)

    # Objects: shadow rays from every pixel, blurred within each object's own pixels (inside its bounding box).
    obj = np.flatnonzero(idx > 0)
    p = cam + t[obj, None] * dirs[obj]
    own = idx[obj].astype(np.int64)
    hard = np.ones((n, num_lamps), np.float32)
    hard[obj] = _visibility(prep, p, _normals(prep, p, own, part[obj]), own)
    hard = hard.reshape(height, width, num_lamps)
    pad = int(np.ceil(3 * sigma))
    for label in range(1, len(prep.shape) + 1):
        mask = labels == label
        rows = np.flatnonzero(mask.any(axis=1))
        if rows.size == 0:
            continue
        cols = np.flatnonzero(mask.any(axis=0))
        y0, y1 = max(rows[0] - pad, 0), min(rows[-1] + pad + 1, height)
        x0, x1 = max(cols[0] - pad, 0), min(cols[-1] + pad + 1, width)
        m = mask[y0:y1, x0:x1]
        if not (hard[y0:y1, x0:x1][m] < 1).any():
            continue  # fully lit surface: nothing to soften
        weight = gaussian_filter(m.astype(np.float32), sigma, mode="nearest")
        for l in range(num_lamps):
            blurred = gaussian_filter(hard[y0:y1, x0:x1, l] * m, sigma, mode="nearest")
            patch = soft[y0:y1, x0:x1, l]
            patch[m] = (blurred / np.maximum(weight, 1e-6))[m]
    return soft.reshape(n, num_lamps)


def render(
    scene: Scene,
    width: int,
    height: int,
    *,
    antialias: bool = True,
    shading: Shading = DEFAULT_SHADING,
) -> tuple[UInt8[np.ndarray, "H W 3"], UInt8[np.ndarray, "H W"]]:
    """Render a scene: the shaded image and the exact instance id map.

    Args:
        scene: the scene (camera, lamps, objects).
        width: image width in pixels.
        height: image height in pixels.
        antialias: re-shade edge pixels with 4 extra rotated-grid samples (the id map is unaffected).
        shading: constants of the shading model.

    Returns:
        (image uint8 [H, W, 3] sRGB, ids uint8 [H, W] with 0 = background and k + 1 = object k).
    """
    prep = _prepare(scene)
    cam = scene.camera.position.astype(np.float32)
    dirs = _primary_rays(scene, width, height)
    t, idx, part = _trace(prep, cam, dirs)
    ids = idx.reshape(height, width)

    soft = _soft_shadows(prep, shading, cam, dirs, t, idx, part, height, width)
    linear = _shade(prep, shading, cam, dirs, t, idx, part, soft, 0)
    image = _srgb(linear, shading.exposure).reshape(height, width, 3)

    if antialias:
        key = ids.astype(np.int32) * 8 + part.reshape(height, width)
        edge = np.flatnonzero(_edge_pixels(key, image, threshold=0.08))
        if edge.size:
            rows, cols = np.divmod(edge, width)
            # all sub-samples of all edge pixels in one batch (sample-major), then the mean with the centre sample
            num = len(_RGSS)
            u = (cols + 0.5)[None, :] + _RGSS[:, 0:1]
            v = (rows + 0.5)[None, :] + _RGSS[:, 1:2]
            sub = scene.camera.ray_directions(width, height, u.ravel(), v.ravel())
            t_s, idx_s, part_s = _trace(prep, cam, sub)
            # soft shadows where a sample sees its pixel centre's surface, shadow rays where it sees another one
            centre = np.tile(edge, num)
            given = np.where((idx_s == idx[centre])[:, None], soft[centre], np.nan).astype(np.float32)
            lin = _shade(prep, shading, cam, sub, t_s, idx_s, part_s, given, 0)
            acc = (linear[edge] + lin.reshape(num, edge.size, 3).sum(axis=0)) / (1 + num)  # linear light
            image.reshape(-1, 3)[edge] = _srgb(acc, shading.exposure)
    return (np.round(image * 255.0)).astype(np.uint8), ids.astype(np.uint8)

"""Rays, the CLEVR camera, and vectorised ray-primitive intersections (sphere, z-rotated box, z-axis cylinder).

Everything is batched over rays with numpy: one call intersects N rays with one primitive, so a frame is a
handful of array operations per object, never a per-pixel Python loop. World frame as in Blender: z up, the
ground plane at z = 0. Camera conventions follow Blender (looks down its local -z, local +y is up).
"""

from dataclasses import dataclass

import numpy as np
from jaxtyping import Float, Int

__all__ = [
    "CUBE",
    "CYLINDER",
    "SPHERE",
    "Camera",
    "bounding_radius",
    "intersect",
    "intersect_box",
    "intersect_cylinder",
    "intersect_ground",
    "intersect_sphere",
    "look_at",
    "surface_normal",
]

# Primitive codes, in the order of the CLEVR generator's properties.json ("cube", "sphere", "cylinder").
CUBE, SPHERE, CYLINDER = 0, 1, 2

# Cube faces: part = 2 * axis + (1 if the face is on the + side); cylinder: 0 = side, 1 = top cap, 2 = bottom cap.
_NO_PART = -1


def look_at(position: Float[np.ndarray, "3"], target: Float[np.ndarray, "3"]) -> Float[np.ndarray, "3 3"]:
    """Rotation whose columns are the camera's right, up and backward axes, looking from ``position`` at ``target``.

    This is Blender's "Track To" with up = world z (no roll), which is how the CLEVR base scene aims its camera.

    Args:
        position: camera centre (world).
        target: point the camera looks at; must not be straight above or below ``position``.

    Returns:
        float64 [3, 3] camera-to-world rotation (columns: right, up, back = -forward).

    Raises:
        ValueError: the viewing direction is vertical or zero.
    """
    forward = np.asarray(target, np.float64) - np.asarray(position, np.float64)
    right = np.cross(forward, (0.0, 0.0, 1.0))
    if np.linalg.norm(right) < 1e-9 * max(np.linalg.norm(forward), 1e-300):
        raise ValueError(f"look_at: viewing direction must not be vertical or zero, got {forward.tolist()}")
    forward /= np.linalg.norm(forward)
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    return np.stack([right, up, -forward], axis=1)


@dataclass(frozen=True)
class Camera:
    """A Blender perspective camera (sensor fit AUTO: the sensor spans the longer image side).

    Attributes:
        position: camera centre (world), float64 [3].
        rotation: camera-to-world rotation, columns right, up, back (float64 [3, 3]).
        lens: focal length in mm (Blender's default camera, kept by the CLEVR base scene: 35).
        sensor: sensor width in mm (Blender default: 32).
    """

    position: np.ndarray
    rotation: np.ndarray
    lens: float = 35.0
    sensor: float = 32.0

    def pixel_scale(self, width: int, height: int) -> float:
        """Tangent of the viewing angle spanned by one pixel."""
        return self.sensor / self.lens / max(width, height)

    def ray_directions(
        self, width: int, height: int, u: Float[np.ndarray, "*N"], v: Float[np.ndarray, "*N"]
    ) -> Float[np.ndarray, "*N 3"]:
        """Unit world directions of the rays through image points (u, v).

        Args:
            width: image width in pixels.
            height: image height in pixels.
            u: column coordinate, 0 at the left edge of the frame (pixel j's centre is j + 0.5).
            v: row coordinate, 0 at the top edge (pixel i's centre is i + 0.5).

        Returns:
            float32 unit vectors, shape ``u.shape + (3,)``.
        """
        s = self.pixel_scale(width, height)
        x = (np.asarray(u, np.float64) - 0.5 * width) * s
        y = (0.5 * height - np.asarray(v, np.float64)) * s
        local = np.stack([x, y, -np.ones_like(x)], axis=-1)  # (*N, 3) camera frame, looking down -z
        world = local @ self.rotation.T
        world /= np.linalg.norm(world, axis=-1, keepdims=True)
        return world.astype(np.float32)

    def project(
        self, points: Float[np.ndarray, "N 3"], width: int, height: int
    ) -> tuple[Float[np.ndarray, "N"], Float[np.ndarray, "N"], Float[np.ndarray, "N"]]:
        """Continuous image coordinates and depth of world points (Blender's ``world_to_camera_view`` scaled).

        Args:
            points: world points in front of the camera.
            width: image width in pixels.
            height: image height in pixels.

        Returns:
            (u, v, depth): column and row in pixels (0 at the left / top edge) and the distance along the
            viewing axis (Blender's ``z``, positive in front of the camera), each float64 [N].
        """
        local = (np.asarray(points, np.float64) - self.position) @ self.rotation  # (N, 3) camera frame
        depth = -local[:, 2]
        s = self.pixel_scale(width, height)
        u = local[:, 0] / depth / s + 0.5 * width
        v = 0.5 * height - local[:, 1] / depth / s
        return u, v, depth


def _no_hit(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full(n, np.inf, np.float32), np.full(n, _NO_PART, np.int8)


def intersect_ground(
    origins: Float[np.ndarray, "N 3"], dirs: Float[np.ndarray, "N 3"], tmin: float = 1e-4
) -> Float[np.ndarray, "N"]:
    """Distance along each ray to the plane z = 0 (inf where the ray goes up or starts below it).

    Args:
        origins: ray origins.
        dirs: unit ray directions.
        tmin: hits closer than this are ignored (avoids self-hits of rays leaving the plane).

    Returns:
        float32 [N] distances, inf for a miss.
    """
    dz = dirs[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = -origins[:, 2] / dz
    return np.where((dz < 0) & (t > tmin), t, np.inf).astype(np.float32)


def intersect_sphere(
    origins: Float[np.ndarray, "N 3"],
    dirs: Float[np.ndarray, "N 3"],
    center: Float[np.ndarray, "3"],
    radius: float,
    tmin: float = 1e-4,
    tmax: float = np.inf,
) -> tuple[Float[np.ndarray, "N"], Int[np.ndarray, "N"]]:
    """First hit of unit-direction rays with a sphere: t = -b - sqrt(b^2 - c), b = (o - c).d, c = |o - c|^2 - r^2.

    Args:
        origins: ray origins.
        dirs: unit ray directions.
        center: sphere centre.
        radius: sphere radius.
        tmin: nearest accepted distance.
        tmax: farthest accepted distance.

    Returns:
        (t, part): float32 [N] distance (inf for a miss) and int8 [N] part (0 on a hit, -1 for a miss).
    """
    oc = origins - np.asarray(center, origins.dtype)
    b = np.einsum("ij,ij->i", oc, dirs)
    c = np.einsum("ij,ij->i", oc, oc) - radius * radius
    disc = b * b - c
    hit = disc >= 0
    root = np.sqrt(np.where(hit, disc, 0))
    t0, t1 = -b - root, -b + root
    t = np.where(t0 > tmin, t0, t1)  # the far root when the origin is inside
    hit &= (t > tmin) & (t < tmax)
    return np.where(hit, t, np.inf).astype(np.float32), np.where(hit, 0, _NO_PART).astype(np.int8)


def _yaw_matrix(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])  # local -> world


def intersect_box(
    origins: Float[np.ndarray, "N 3"],
    dirs: Float[np.ndarray, "N 3"],
    center: Float[np.ndarray, "3"],
    half_size: float,
    yaw: float,
    tmin: float = 1e-4,
    tmax: float = np.inf,
) -> tuple[Float[np.ndarray, "N"], Int[np.ndarray, "N"]]:
    """First hit with a cube of half side ``half_size`` rotated by ``yaw`` radians about the vertical axis (slabs).

    Args:
        origins: ray origins.
        dirs: unit ray directions.
        center: cube centre.
        half_size: half the side length.
        yaw: rotation about +z in radians (counter-clockwise seen from above).
        tmin: nearest accepted distance.
        tmax: farthest accepted distance.

    Returns:
        (t, part): float32 [N] distance (inf for a miss) and int8 [N] face hit, 2 * axis + (1 on the + side), -1
        for a miss.
    """
    rot = _yaw_matrix(yaw).astype(origins.dtype)
    o = (origins - np.asarray(center, origins.dtype)) @ rot  # (N, 3) local frame (row-vector form of R^T x)
    d = dirs @ rot
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / d
        t1 = (-half_size - o) * inv
        t2 = (half_size - o) * inv
    # A ray parallel to a slab and exactly on its boundary gives 0 * inf = nan: treat it as inside the slab.
    t_lo = np.nan_to_num(np.minimum(t1, t2), nan=-np.inf)
    t_hi = np.nan_to_num(np.maximum(t1, t2), nan=np.inf)
    near_axis = np.argmax(t_lo, axis=1)
    rows = np.arange(len(o))
    t_near = t_lo[rows, near_axis]
    far_axis = np.argmin(t_hi, axis=1)
    t_far = t_hi[rows, far_axis]
    hit = (t_near <= t_far) & (t_far > tmin)
    use_near = t_near > tmin
    t = np.where(use_near, t_near, t_far)
    hit &= t < tmax
    axis = np.where(use_near, near_axis, far_axis)
    # entering a face: the normal points against the ray; leaving (origin inside): along it
    d_axis = d[rows, axis]
    plus = np.where(use_near, d_axis < 0, d_axis > 0)
    part = (2 * axis + plus).astype(np.int8)
    return np.where(hit, t, np.inf).astype(np.float32), np.where(hit, part, _NO_PART).astype(np.int8)


def intersect_cylinder(
    origins: Float[np.ndarray, "N 3"],
    dirs: Float[np.ndarray, "N 3"],
    center: Float[np.ndarray, "3"],
    radius: float,
    half_height: float,
    tmin: float = 1e-4,
    tmax: float = np.inf,
) -> tuple[Float[np.ndarray, "N"], Int[np.ndarray, "N"]]:
    """First hit with a closed cylinder with vertical axis through ``center`` (side quadratic + two cap planes).

    Args:
        origins: ray origins.
        dirs: unit ray directions.
        center: centre of the cylinder (half-way between the caps).
        radius: cylinder radius.
        half_height: half the distance between the caps.
        tmin: nearest accepted distance.
        tmax: farthest accepted distance.

    Returns:
        (t, part): float32 [N] distance (inf for a miss) and int8 [N] part, 0 side, 1 top cap, 2 bottom cap, -1
        for a miss.
    """
    o = origins - np.asarray(center, origins.dtype)
    d = dirs
    a = d[:, 0] ** 2 + d[:, 1] ** 2
    b = o[:, 0] * d[:, 0] + o[:, 1] * d[:, 1]
    c = o[:, 0] ** 2 + o[:, 1] ** 2 - radius * radius
    disc = b * b - a * c
    ok = (disc >= 0) & (a > 0)
    root = np.sqrt(np.where(ok, disc, 0))
    with np.errstate(divide="ignore", invalid="ignore"):
        side = [(-b - root) / a, (-b + root) / a]
        caps = [(half_height - o[:, 2]) / d[:, 2], (-half_height - o[:, 2]) / d[:, 2]]
    best = np.full(len(o), np.inf, dtype=np.float64)
    part = np.full(len(o), _NO_PART, np.int8)
    for ts in side:
        z = o[:, 2] + ts * d[:, 2]
        valid = ok & (ts > tmin) & (ts < tmax) & (np.abs(z) <= half_height) & (ts < best)
        best = np.where(valid, ts, best)
        part[valid] = 0
    for code, ts in ((1, caps[0]), (2, caps[1])):
        with np.errstate(invalid="ignore", over="ignore"):  # rays parallel to the caps: ts = +-inf or nan
            x = o[:, 0] + ts * d[:, 0]
            y = o[:, 1] + ts * d[:, 1]
            on_disk = x * x + y * y <= radius * radius
        valid = np.isfinite(ts) & (ts > tmin) & (ts < tmax) & on_disk & (ts < best)
        best = np.where(valid, ts, best)
        part[valid] = code
    return best.astype(np.float32), part


def bounding_radius(shape: int, size: float) -> float:
    """Radius of the sphere around an object's centre that contains it (for culling).

    Args:
        shape: :data:`CUBE`, :data:`SPHERE` or :data:`CYLINDER`.
        size: the CLEVR size scalar r (cube half side, sphere radius, cylinder radius and half height).

    Returns:
        r for a sphere, r * sqrt(3) for a cube, r * sqrt(2) for a cylinder.
    """
    return size * (1.0, np.sqrt(3.0), np.sqrt(2.0))[0 if shape == SPHERE else 1 if shape == CUBE else 2]


def intersect(
    shape: int,
    origins: Float[np.ndarray, "N 3"],
    dirs: Float[np.ndarray, "N 3"],
    center: Float[np.ndarray, "3"],
    size: float,
    yaw: float,
    tmin: float = 1e-4,
    tmax: float = np.inf,
) -> tuple[Float[np.ndarray, "N"], Int[np.ndarray, "N"]]:
    """Intersect rays with one CLEVR object (dispatch on ``shape``); see the per-primitive functions.

    Args:
        shape: :data:`CUBE`, :data:`SPHERE` or :data:`CYLINDER`.
        origins: ray origins.
        dirs: unit ray directions.
        center: object centre.
        size: the CLEVR size scalar r.
        yaw: rotation about +z in radians (used by cubes only).
        tmin: nearest accepted distance.
        tmax: farthest accepted distance.

    Returns:
        (t, part) as in :func:`intersect_sphere`, :func:`intersect_box`, :func:`intersect_cylinder`.

    Raises:
        ValueError: unknown ``shape``.
    """
    if len(origins) == 0:
        return _no_hit(0)
    if shape == SPHERE:
        return intersect_sphere(origins, dirs, center, size, tmin, tmax)
    if shape == CUBE:
        return intersect_box(origins, dirs, center, size, yaw, tmin, tmax)
    if shape == CYLINDER:
        return intersect_cylinder(origins, dirs, center, size, size, tmin, tmax)
    raise ValueError(f"intersect: shape must be {CUBE} (cube), {SPHERE} (sphere) or {CYLINDER} (cylinder), got {shape}")


def surface_normal(
    shape: int,
    points: Float[np.ndarray, "N 3"],
    part: Int[np.ndarray, "N"],
    center: Float[np.ndarray, "3"],
    size: float,
    yaw: float,
) -> Float[np.ndarray, "N 3"]:
    """Outward unit normals at hit points of one object.

    Args:
        shape: :data:`CUBE`, :data:`SPHERE` or :data:`CYLINDER`.
        points: hit points on the surface.
        part: the part codes returned by :func:`intersect` for these points.
        center: object centre.
        size: the CLEVR size scalar r.
        yaw: rotation about +z in radians.

    Returns:
        float32 [N, 3] unit normals.

    Raises:
        ValueError: unknown ``shape``.
    """
    rel = (points - np.asarray(center, points.dtype)).astype(np.float32)
    if shape == SPHERE:
        return rel / np.linalg.norm(rel, axis=1, keepdims=True)
    if shape == CUBE:
        axis = part.astype(np.int64) // 2
        sign = np.where(part % 2 == 1, 1.0, -1.0).astype(np.float32)
        local = np.zeros((len(points), 3), np.float32)
        local[np.arange(len(points)), axis] = sign
        return local @ _yaw_matrix(yaw).T.astype(np.float32)
    if shape == CYLINDER:
        n = np.zeros((len(points), 3), np.float32)
        side = part == 0
        n[side, :2] = rel[side, :2]
        n[side] /= np.maximum(np.linalg.norm(n[side], axis=1, keepdims=True), 1e-12)
        n[part == 1, 2] = 1.0
        n[part == 2, 2] = -1.0
        return n
    raise ValueError(f"surface_normal: shape must be 0, 1 or 2, got {shape}")

"""How much of a flat-coloured scene's segmentation its colours alone decide: same-colour connected components.

In a scene of flat-coloured objects (Tetrominoes; sprites of one colour each), two objects of exactly the same
colour that touch form one region of identical pixels. Nothing in the image's colours separates them; only a
model that has learned the objects' shapes can. This module measures how often that happens in a split and what
FG-ARI a segmentation by colour alone reaches:

* `colour_components(images)`: each pixel's 4-connected component of identical RGB values.
* `touching_same_colour(images, true_ids)`: the scenes where one such component holds pixels of two or more
  ground-truth objects (0 = background is left out).

FG-ARI of `colour_components` against the ground truth is then an upper bound for every model that segments by
colour and adjacency only: 1.0 on the scenes that are not `touching_same_colour`, below 1 on the others.
"""

import numpy as np
from jaxtyping import Bool, Int64, Shaped
from scipy import ndimage

__all__ = ["colour_components", "touching_same_colour"]

_FOUR_NEIGHBOURS = ndimage.generate_binary_structure(2, 1)

# The functions' inputs are annotated as unchecked shapes so that bad input reaches `_check_images` and the check
# of `true_ids`, whose errors say more than the run-time shape checker's.


def _check_images(images: np.ndarray) -> None:
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        shown = f"{images.dtype} {list(images.shape)}" if isinstance(images, np.ndarray) else type(images).__name__
        raise ValueError(f"colour_components: images must be a uint8 array [B, H, W, 3], got {shown}")


def colour_components(images: Shaped[np.ndarray, "*_dims"]) -> Int64[np.ndarray, "B H W"]:
    """Ids of the 4-connected regions of identical RGB value, per image (ids 1, 2, ...; unique within an image).

    Args:
        images: uint8 RGB images, channel-last (the datasets' stored layout).

    Raises:
        ValueError: `images` is not uint8 [B, H, W, 3].
    """
    _check_images(images)
    ids = np.zeros(images.shape[:3], dtype=np.int64)
    for b, image in enumerate(images):
        packed = (image[..., 0].astype(np.int64) << 16) | (image[..., 1].astype(np.int64) << 8) | image[..., 2]
        next_id = 1
        for colour in np.unique(packed):
            region = packed == colour
            labels, count = ndimage.label(region, structure=_FOUR_NEIGHBOURS)
            ids[b][region] = labels[region] + (next_id - 1)
            next_id += count
    return ids


def touching_same_colour(
    images: Shaped[np.ndarray, "*_dims"], true_ids: Shaped[np.ndarray, "*_dims"]
) -> Bool[np.ndarray, "B"]:
    """Whether each scene has two ground-truth objects (ids != 0) inside one same-colour connected region.

    Args:
        images: uint8 RGB images [B, H, W, 3].
        true_ids: ground-truth object ids [B, H, W], 0 = background (e.g. `masks_to_ids` of the stored masks).

    Raises:
        ValueError: `images` is not uint8 [B, H, W, 3], or `true_ids` is not an integer array of shape [B, H, W].
    """
    _check_images(images)
    if not np.issubdtype(np.asarray(true_ids).dtype, np.integer) or np.shape(true_ids) != images.shape[:3]:
        raise ValueError(f"touching_same_colour: true_ids must be integers of shape {list(images.shape[:3])}, "
                         f"got {np.asarray(true_ids).dtype} {list(np.shape(true_ids))}")
    components = colour_components(images)
    result = np.zeros(len(images), dtype=bool)
    for b in range(len(images)):
        foreground = true_ids[b] != 0
        pairs = np.unique(np.stack([components[b][foreground], true_ids[b][foreground]]), axis=1)
        result[b] = len(np.unique(pairs[0])) < pairs.shape[1]  # some component holds two objects
    return result

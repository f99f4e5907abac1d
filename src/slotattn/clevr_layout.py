"""CLEVR's 19-number object vector (official `slot_attention/data.py` `preprocess_clevr`): layout, class orders, decoding.

The one place these facts live: the CLEVR reader (`data.clevr`) writes targets in this layout, the set-prediction
AP (`metrics.ap`) reads predictions and targets in it, and the figures describe predictions with it. A leaf module:
it imports nothing from slotattn.
"""

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np
import torch

# Class orders of the TFDS `clevr` builder's ClassLabel features (tensorflow_datasets/image/clevr.py). The
# official one-hot targets use these indices, so the order is part of the target format. It is NOT the order of
# the CLEVR generator's properties.json (gray, red, blue, green, brown, purple, cyan, yellow for colours).
SIZES = ("small", "large")
MATERIALS = ("rubber", "metal")
SHAPES = ("cube", "sphere", "cylinder")
COLORS = ("gray", "blue", "brown", "yellow", "red", "green", "purple", "cyan")
PROPERTIES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {"size": SIZES, "material": MATERIALS, "shape": SHAPES, "color": COLORS}  # in target order
)

# The 19 numbers of a target row: (x, y, z) mapped from [-3, 3] to [0, 1] by (c + 3) / 6, then the one-hots in the
# order above, then 1 for a real object (0 in padding rows; a prediction's confidence).
TARGET_SLICES: Mapping[str, slice] = MappingProxyType(
    {
        "3d_coords": slice(0, 3),
        "size": slice(3, 5),
        "material": slice(5, 7),
        "shape": slice(7, 10),
        "color": slice(10, 18),
        "real": slice(18, 19),
    }
)
TARGET_SIZE = 19
# Argmax groups of the discrete properties, in target order: size, material, shape, colour.
ATTRIBUTE_SLICES = tuple(TARGET_SLICES[key] for key in PROPERTIES)
COORD_SCALE = 6.0  # coordinates were mapped from [-3, 3] to [0, 1]: distances are measured in scene units


def describe_prediction(vec: np.ndarray | torch.Tensor) -> dict[str, Any]:
    """Decode one 19-d prediction (or target row) into CLEVR terms, for figures and debugging.

    Discrete properties are the argmax over their block, as in the official ``average_precision_clevr``.

    Args:
        vec: one row in the :data:`TARGET_SLICES` layout (numpy or torch, shape [19]).

    Returns:
        ``{"3d_coords": [x, y, z] in scene units (6 * c - 3), "size", "material", "shape", "color": class names,
        "real": the last number (1 for a real object; a prediction's confidence)}``.
    """
    v = vec.detach().cpu().double().numpy() if isinstance(vec, torch.Tensor) else np.asarray(vec, dtype=np.float64)
    if v.shape != (TARGET_SIZE,):
        raise ValueError(f"describe_prediction: expected one {TARGET_SIZE}-d row, got shape {list(v.shape)}")
    out: dict[str, Any] = {"3d_coords": [float(c) * COORD_SCALE - 3.0 for c in v[TARGET_SLICES["3d_coords"]]]}
    for key, names in PROPERTIES.items():
        out[key] = names[int(np.argmax(v[TARGET_SLICES[key]]))]
    out["real"] = float(v[TARGET_SLICES["real"]][0])
    return out

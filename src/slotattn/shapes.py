"""Dimension letters used in every shape annotation of slotattn, defined once here.

B batch · K slots · N inputs (= h*w) · D slot size · Din input feature size · C channels · H W image ·
h w feature or broadcast grid · M ground-truth objects · P properties (19 for CLEVR) · T iterations.

Annotations use jaxtyping (``Float[Tensor, "B N Din"]``); under pytest they are checked at run time
(see ``tests/conftest.py``).
"""

from jaxtyping import Bool, Float, Int, Shaped
from torch import Tensor

__all__ = ["Bool", "Float", "Int", "Shaped", "Tensor"]

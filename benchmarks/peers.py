"""The benchmarks' peer: lucidrains' PyPI `slot-attention` module inside the reference autoencoder.

Only the grouping module differs from `reference_model.SlotAttentionAutoEncoder` (same encoder, decoder and
compositing), so the comparison isolates what a user gets by dropping `slot_attention.SlotAttention` into the
official model. lucidrains' module has biased q/k/v projections (3 * D more parameters than the paper's) and
needs the inputs to be as wide as the slots. Install it with `pip install -e .[bench]`; without it the peer is
skipped with `MISSING`.
"""

from reference_model import SlotAttentionAutoEncoder
from torch import nn

try:
    import slot_attention as lucidrains
except ImportError:  # the benchmark-only extra is not installed
    lucidrains = None

MISSING = ("lucidrains' slot-attention is not installed (pip install -e '.[bench]' or pip install "
           "'slot-attention==1.4.0'): the lucidrains columns are skipped")


def available() -> bool:
    return lucidrains is not None


def version() -> str | None:
    """The installed slot-attention version, or None."""
    if lucidrains is None:
        return None
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("slot-attention")
    except PackageNotFoundError:
        return "unknown"


def lucidrains_slot_attention(num_slots: int, slot_size: int, num_iterations: int, mlp_hidden_size: int,
                              epsilon: float = 1e-8) -> nn.Module:
    """`slot_attention.SlotAttention` with the paper's sizes; raises ImportError (with `MISSING`) without it."""
    if lucidrains is None:
        raise ImportError(MISSING)
    return lucidrains.SlotAttention(num_slots=num_slots, dim=slot_size, iters=num_iterations, eps=epsilon,
                                    hidden_dim=mlp_hidden_size)


def lucidrains_autoencoder(**kwargs) -> SlotAttentionAutoEncoder:
    """The reference autoencoder (same keyword arguments) with lucidrains' module as its grouping module."""
    slot_size = kwargs.get("slot_size", 64)
    hidden_size = kwargs.get("hidden_size", 64)
    if hidden_size != slot_size:
        raise ValueError(f"lucidrains' SlotAttention needs inputs as wide as the slots: hidden_size {hidden_size} "
                         f"!= slot_size {slot_size}")
    module = lucidrains_slot_attention(kwargs.get("num_slots", 7), slot_size, kwargs.get("num_iterations", 3),
                                       kwargs.get("mlp_hidden_size", 128))
    return SlotAttentionAutoEncoder(**kwargs, slot_attention=module)

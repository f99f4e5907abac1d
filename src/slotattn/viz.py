"""Slot-decomposition figures from numpy arrays; knows nothing about models or training.

matplotlib is imported when a figure is drawn, never at import, and pyplot not at all: figures are drawn on their own
Agg canvas, so importing slotattn neither costs matplotlib's import time nor changes a notebook's backend.
"""

from pathlib import Path

import numpy as np


def new_figure(width: float, height: float):
    """A matplotlib Figure on its own Agg canvas (files only), outside pyplot's figure manager and backend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path: str | Path) -> Path:
    """Lay out `fig` and write it to `path` (PNG, 100 dpi; `.png` added to a name without a suffix), making the
    folder if needed. Returns the path written."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a directory; give the figure a file name such as {path / 'figure.png'}")
    if path.suffix == "":
        path = path.with_suffix(".png")  # what matplotlib would write: say so in the returned path
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def _to_rgb(image: np.ndarray) -> np.ndarray:
    """[3, H, W] in [-1, 1] -> [H, W, 3] in [0, 1]."""
    return np.clip((np.transpose(image, (1, 2, 0)) + 1.0) / 2.0, 0.0, 1.0)


def _segmentation_colors(num: int) -> np.ndarray:
    import matplotlib

    colors = matplotlib.colormaps["tab20"](np.arange(max(num, 1)) % 20)[:, :3]
    colors[0] = 0.0  # id 0 (background / first slot) in black
    return colors


def decomposition_figure(
    images: np.ndarray,
    recon: np.ndarray,
    recons: np.ndarray,
    masks: np.ndarray,
    true_ids: np.ndarray | None,
    path: str | Path,
) -> Path:
    """One row per example: input, reconstruction, each slot's rgb * alpha, argmax segmentation, ground truth.

    Args:
        images: [B, 3, H, W] inputs in [-1, 1].
        recon: [B, 3, H, W] reconstructions in [-1, 1].
        recons: [B, K, 3, H, W] per-slot RGB in [-1, 1].
        masks: [B, K, 1, H, W] alpha masks (sum to 1 over K).
        true_ids: [B, H, W] ground-truth ids (0 = background) or None.
        path: where to write the PNG.

    Returns:
        The path written.
    """
    num, num_slots = recons.shape[:2]
    pred_ids = masks[:, :, 0].argmax(axis=1)
    columns = ["input", "recon"] + [f"slot {k}" for k in range(num_slots)] + ["segmentation"]
    columns += ["ground truth"] if true_ids is not None else []
    fig = new_figure(1.6 * len(columns), 1.6 * num)
    axes = fig.subplots(num, len(columns), squeeze=False)
    pred_colors = _segmentation_colors(num_slots)
    for b in range(num):
        # Each slot drawn as rgb * alpha over white, so an empty slot is a white tile.
        slot_tiles = [_to_rgb(recons[b, k]) * masks[b, k, 0][..., None] + (1 - masks[b, k, 0][..., None])
                      for k in range(num_slots)]
        tiles = [_to_rgb(images[b]), _to_rgb(recon[b])] + slot_tiles + [pred_colors[pred_ids[b]]]
        if true_ids is not None:
            tiles.append(_segmentation_colors(int(true_ids.max()) + 1)[true_ids[b]])
        for ax, tile, title in zip(axes[b], tiles, columns):
            ax.imshow(tile, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if b == 0:
                ax.set_title(title, fontsize=8)
    return save_figure(fig, path)


def attention_figure(images: np.ndarray, attn: np.ndarray, labels: list[list[str]], path: str | Path) -> Path:
    """One row per example: the input, then each slot's attention over the feature grid with its prediction.

    Args:
        images: [B, 3, H, W] inputs in [-1, 1].
        attn: [B, K, N] attention of the last iteration (N = h * w, a square grid).
        labels: labels[b][k], the text under slot k of example b (e.g. its predicted properties).
        path: where to write the PNG.

    Returns:
        The path written.
    """
    num, num_slots, num_inputs = attn.shape
    side = int(round(num_inputs**0.5))
    if side * side != num_inputs:
        raise ValueError(f"attention_figure: {num_inputs} inputs do not form a square grid")
    fig = new_figure(1.7 * (num_slots + 1), 1.9 * num)
    axes = fig.subplots(num, num_slots + 1, squeeze=False)
    for b in range(num):
        axes[b, 0].imshow(_to_rgb(images[b]))
        for k in range(num_slots):
            ax = axes[b, k + 1]
            # One colour scale per example (0 .. its largest weight), so slots compare and structure shows.
            ax.imshow(attn[b, k].reshape(side, side), cmap="viridis", vmin=0.0, vmax=float(attn[b].max()),
                      interpolation="nearest")
            ax.set_xlabel(labels[b][k], fontsize=5)
        for ax in axes[b]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_title("input", fontsize=8)
    for k in range(num_slots):
        axes[0, k + 1].set_title(f"slot {k}", fontsize=8)
    return save_figure(fig, path)

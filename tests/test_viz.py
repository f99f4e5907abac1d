"""Figures: drawn from arrays to PNG files, with matplotlib imported only when drawing and its backend left alone."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
from PIL import Image

import slotattn
from slotattn.viz import attention_figure, decomposition_figure

SRC = str(Path(slotattn.__file__).resolve().parents[1])


def run_python(code: str) -> subprocess.CompletedProcess:
    """`code` in a fresh interpreter that imports this checkout's slotattn."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True,
                          timeout=120)


def test_importing_slotattn_does_not_import_matplotlib():
    result = run_python("""
        import sys
        import slotattn, slotattn.run, slotattn.cli, slotattn.viz, slotattn.tasks, slotattn.report, slotattn.studies
        print(sorted(m for m in sys.modules if m.split(".")[0] == "matplotlib"))
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_drawing_a_figure_leaves_the_matplotlib_backend_and_pyplot_alone(tmp_path):
    # A notebook has chosen its backend; drawing a slotattn figure must not switch it (or create pyplot figures).
    result = run_python(f"""
        import sys
        import matplotlib
        matplotlib.use("svg")
        import numpy as np
        from slotattn.viz import decomposition_figure
        images = np.zeros((1, 3, 8, 8)); masks = np.full((1, 2, 1, 8, 8), 0.5)
        decomposition_figure(images, images, np.zeros((1, 2, 3, 8, 8)), masks, None, {str(tmp_path / "f.png")!r})
        print(matplotlib.get_backend(), "matplotlib.pyplot" in sys.modules)
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["svg", "False"]
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_figures_have_one_tile_per_column_and_row(tmp_path):
    rng = np.random.default_rng(0)
    num, num_slots, size = 2, 3, 8
    masks = rng.random((num, num_slots, 1, size, size))
    masks /= masks.sum(axis=1, keepdims=True)
    images = rng.uniform(-1, 1, (num, 3, size, size))
    path = decomposition_figure(images, images, rng.uniform(-1, 1, (num, num_slots, 3, size, size)), masks,
                                rng.integers(0, 3, (num, size, size)), tmp_path / "sub" / "decomposition.png")
    width, height = Image.open(path).size
    columns = 2 + num_slots + 2  # input, recon, slots, segmentation, ground truth
    assert (width, height) == (round(160 * columns), round(160 * num))  # 1.6 inches per tile at 100 dpi
    attn = rng.random((num, num_slots, 16))
    path = attention_figure(images, attn / attn.sum(1, keepdims=True), [["a"] * num_slots] * num, tmp_path / "a.png")
    assert Image.open(path).size == (round(170 * (num_slots + 1)), round(190 * num))

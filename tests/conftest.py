"""Test set-up: run-time shape checking of slotattn, the --runslow gate, deterministic seeds."""

from jaxtyping import install_import_hook

# Must run before anything imports slotattn. Installed for the whole session (not as a `with` block, which
# would cover only the imports inside it), so every slotattn module, imported now or later, is checked.
install_import_hook("slotattn", "beartype.beartype")

import numpy as np
import pytest
import torch


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip_slow = pytest.mark.skip(reason="slow: opt in with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)
    if not torch.cuda.is_available():
        skip_gpu = pytest.mark.skip(reason="needs CUDA")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def _seed_everything():
    torch.manual_seed(0)
    np.random.seed(0)

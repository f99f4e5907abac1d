"""Same-colour connected components and the scenes whose colours alone cannot separate two objects."""

import numpy as np
import pytest
import torch

from slotattn.data.batch import masks_to_ids
from slotattn.data.generators.tetrominoes import generate_tetrominoes
from slotattn.metrics import colour_components, fg_ari, touching_same_colour

RED, BLUE = (255, 0, 0), (0, 0, 255)


def scene(pieces):
    """A 6x8 black image and its ids from [(colour, [(row, col), ...]), ...]; object i gets id i + 1."""
    image = np.zeros((1, 6, 8, 3), np.uint8)
    ids = np.zeros((1, 6, 8), np.int64)
    for i, (colour, cells) in enumerate(pieces):
        for r, c in cells:
            image[0, r, c], ids[0, r, c] = colour, i + 1
    return image, ids


def test_two_same_coloured_objects_that_touch_are_one_component():
    image, ids = scene([(RED, [(1, 1), (1, 2)]), (RED, [(1, 3), (2, 3)])])
    components = colour_components(image)
    assert components[0, 1, 1] == components[0, 2, 3] != components[0, 0, 0]
    assert touching_same_colour(image, ids).tolist() == [True]
    assert fg_ari(torch.from_numpy(ids), torch.from_numpy(components)).item() == 0.0  # one cluster for two objects


@pytest.mark.parametrize("pieces", [
    [(RED, [(1, 1), (1, 2)]), (RED, [(1, 4), (2, 4)])],   # same colour, a pixel apart
    [(RED, [(1, 1), (1, 2)]), (RED, [(2, 3), (3, 3)])],   # same colour, diagonal only (not 4-connected)
    [(RED, [(1, 1), (1, 2)]), (BLUE, [(1, 3), (2, 3)])],  # touching, different colours
])
def test_objects_that_colours_separate_are_not_flagged_and_score_one(pieces):
    image, ids = scene(pieces)
    assert touching_same_colour(image, ids).tolist() == [False]
    assert fg_ari(torch.from_numpy(ids), torch.from_numpy(colour_components(image))).item() == 1.0


def test_on_generated_tetrominoes_colours_decide_exactly_the_scenes_not_flagged():
    data = generate_tetrominoes(200, np.random.default_rng(7))
    ids = masks_to_ids(data["mask"])
    touching = touching_same_colour(data["image"], ids)
    scores = fg_ari(torch.from_numpy(ids), torch.from_numpy(colour_components(data["image"]))).numpy()
    assert 0 < touching.sum() < 200  # both kinds occur in 200 scenes (8 % touching in 5,000)
    assert (scores[~touching] == 1.0).all() and (scores[touching] < 1.0).all()


def test_bad_input_says_what_was_expected():
    with pytest.raises(ValueError, match=r"uint8 array \[B, H, W, 3\], got float32 \[1, 6, 8, 3\]"):
        colour_components(np.zeros((1, 6, 8, 3), np.float32))
    with pytest.raises(ValueError, match=r"true_ids must be integers of shape \[1, 6, 8\], got int64 \[6, 8\]"):
        touching_same_colour(np.zeros((1, 6, 8, 3), np.uint8), np.zeros((6, 8), np.int64))

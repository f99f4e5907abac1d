"""ARI, FG-ARI and mBO against sklearn and a brute-force numpy oracle, plus degenerate cases and input checks."""

import functools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import adjusted_rand_score

import slotattn.metrics
from slotattn.metrics import ari, fg_ari, mean_best_overlap

LONG = functools.partial(torch.zeros, dtype=torch.long)
ATOL = 1e-12  # sklearn divides exact Python ints; we divide float64 products of exact int64 counts


def sklearn_ari(true_ids, pred_ids, ignore_background=False):
    """Per-example oracle; NaN where FG-ARI has no foreground pixels (our documented convention)."""
    true = true_ids.flatten(1).numpy()
    pred = pred_ids.flatten(1).numpy()
    scores = []
    for t, p in zip(true, pred):
        if ignore_background:
            t, p = t[t != 0], p[t != 0]
        scores.append(adjusted_rand_score(t, p) if len(t) else math.nan)
    return torch.tensor(scores, dtype=torch.float64)


def brute_force_mbo(true_ids, pred_ids):
    """Plain transcription of the definition: loop over objects and segments, IoU from boolean masks."""
    scores = []
    for t, p in zip(true_ids.reshape(len(true_ids), -1).numpy(), pred_ids.reshape(len(pred_ids), -1).numpy()):
        best = []
        for g in np.unique(t):
            if g == 0:
                continue
            obj = t == g
            best.append(max((obj & (p == s)).sum() / (obj | (p == s)).sum() for s in np.unique(p)))
        scores.append(np.mean(best) if best else math.nan)
    return torch.tensor(scores, dtype=torch.float64)


def random_labelings(rng, batch_size, shape, num_true, num_pred, background=0.3, noise=None):
    """Random ground truth with a background share; the prediction is a relabelled copy (ids merged mod num_pred)
    with a share ``noise`` of pixels (random per example if None) set at random, so ARI spans its range."""
    true = rng.integers(1, num_true + 1, size=(batch_size, *shape))
    true[rng.random(true.shape) < background] = 0
    pred = true % num_pred
    share = rng.random((batch_size,) + (1,) * len(shape)) if noise is None else noise
    noise = rng.random(true.shape) < share
    pred[noise] = rng.integers(0, num_pred, size=noise.sum())
    return torch.from_numpy(true), torch.from_numpy(pred)


def test_metrics_package_exports_the_three_metrics():
    assert {"ari", "fg_ari", "mean_best_overlap"} <= set(slotattn.metrics.__all__)
    assert slotattn.metrics.ari is ari and slotattn.metrics.fg_ari is fg_ari


def test_ari_and_fg_ari_match_sklearn_on_random_labelings():
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(80):
        batch_size = int(rng.integers(1, 6))
        shape = tuple(int(s) for s in rng.integers(1, 9, size=int(rng.integers(1, 3))))
        true, pred = random_labelings(rng, batch_size, shape, int(rng.integers(1, 9)), int(rng.integers(1, 9)))
        if rng.random() < 0.3:  # huge, sparse id values must not change anything
            true = true * 2**40 + 7 * (true > 0)
            pred = pred * 2**45 + 3
        torch.testing.assert_close(ari(true, pred), sklearn_ari(true, pred), rtol=0, atol=ATOL)
        torch.testing.assert_close(fg_ari(true, pred), sklearn_ari(true, pred, True), rtol=0, atol=ATOL, equal_nan=True)
        checked += batch_size
    assert checked >= 200


def test_ari_matches_sklearn_on_full_size_maps_with_many_ids():
    rng = np.random.default_rng(1)
    true, pred = random_labelings(rng, 2, (128, 128), num_true=11, num_pred=64, background=0.5, noise=0.5)
    uniform = torch.from_numpy(rng.integers(0, 200, size=(1, 128, 128)))  # ARI ~ 0: cancellation-prone
    true, pred = torch.cat([true, uniform]), torch.cat([pred, uniform.flip(-1)])
    expected = sklearn_ari(true, pred)
    assert expected[:2].min() > 0.05 and abs(expected[2]) < 0.01  # the cases are the ones described
    torch.testing.assert_close(ari(true, pred), expected, rtol=0, atol=ATOL)
    torch.testing.assert_close(fg_ari(true, pred), sklearn_ari(true, pred, True), rtol=0, atol=ATOL)


@pytest.mark.parametrize(
    ("true", "pred", "expected"),
    [
        ([3, 3, 3, 3], [7, 7, 7, 7], 1.0),  # one cluster on both sides
        ([0, 0, 1, 1, 2], [5, 5, 9, 9, 1], 1.0),  # identical up to renaming
        ([0, 1, 2, 3], [3, 2, 1, 0], 1.0),  # all singletons on both sides
        ([4], [0], 1.0),  # one pixel
        ([0, 0, 0, 0], [0, 1, 2, 3], 0.0),  # one cluster vs singletons
        ([0, 0, 1, 1], [0, 1, 0, 1], -0.5),  # worse than chance
    ],
)
def test_ari_degenerate_cases_follow_sklearn(true, pred, expected):
    true_ids, pred_ids = torch.tensor([true]), torch.tensor([pred])
    assert adjusted_rand_score(true, pred) == pytest.approx(expected)
    torch.testing.assert_close(ari(true_ids, pred_ids), torch.tensor([expected], dtype=torch.float64))


def test_fg_ari_is_nan_without_foreground_and_finite_elsewhere():
    true = torch.tensor([[0, 0, 0, 0], [0, 1, 1, 2], [0, 0, 0, 5]])
    pred = torch.tensor([[0, 1, 2, 3], [3, 1, 1, 2], [1, 2, 3, 4]])
    scores = fg_ari(true, pred)
    assert torch.isnan(scores[0])
    torch.testing.assert_close(scores[1:], torch.tensor([1.0, 1.0], dtype=torch.float64))  # one fg pixel -> 1.0
    assert not torch.isnan(ari(true, pred)).any()  # plain ARI scores background too
    torch.testing.assert_close(ari(true, pred), sklearn_ari(true, pred))


def test_fg_ari_ignores_predictions_on_background_pixels():
    rng = np.random.default_rng(2)
    true, pred = random_labelings(rng, 4, (32, 32), num_true=6, num_pred=7, background=0.5)
    scrambled = torch.where(true == 0, torch.randint(0, 50, true.shape), pred)
    assert not torch.equal(scrambled, pred)
    torch.testing.assert_close(fg_ari(true, scrambled), fg_ari(true, pred), rtol=0, atol=0)
    assert not torch.allclose(ari(true, scrambled), ari(true, pred))  # plain ARI does see them


def test_fg_ari_equals_sklearn_on_foreground_pixels_only():
    rng = np.random.default_rng(3)
    true, pred = random_labelings(rng, 3, (16, 16), num_true=5, num_pred=5, background=0.4)
    for b in range(3):
        fg = true[b] != 0
        expected = adjusted_rand_score(true[b][fg].numpy(), pred[b][fg].numpy())
        assert fg_ari(true, pred)[b].item() == pytest.approx(expected, abs=ATOL)
        assert fg_ari(true[b][fg][None], pred[b][fg][None]).item() == pytest.approx(expected, abs=ATOL)


@pytest.mark.parametrize("metric", [ari, fg_ari, mean_best_overlap])
def test_batched_metric_equals_one_example_at_a_time(metric):
    rng = np.random.default_rng(4)
    true, pred = random_labelings(rng, 6, (12, 10), num_true=5, num_pred=4)
    true[2] = 0  # an example without foreground inside the batch
    one_at_a_time = torch.cat([metric(true[b : b + 1], pred[b : b + 1]) for b in range(6)])
    torch.testing.assert_close(metric(true, pred), one_at_a_time, rtol=0, atol=1e-15, equal_nan=True)
    torch.testing.assert_close(metric(true.flatten(1), pred.flatten(1)), one_at_a_time, equal_nan=True)


@pytest.mark.parametrize("metric", [ari, fg_ari, mean_best_overlap])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.int16, torch.int32, torch.int64])
def test_metrics_return_float64_for_every_integer_dtype(metric, dtype):
    true = torch.tensor([[0, 1, 1, 2, 2, 2]], dtype=dtype)
    pred = torch.tensor([[1, 1, 0, 2, 2, 0]], dtype=dtype)
    score = metric(true, pred)
    assert score.dtype == torch.float64 and score.shape == (1,)
    torch.testing.assert_close(score, metric(true.long(), pred.long()))


def test_ari_under_bfloat16_autocast_still_matches_sklearn():
    rng = np.random.default_rng(5)
    true, pred = random_labelings(rng, 2, (128, 128), num_true=11, num_pred=24)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        scores, fg_scores, mbo = ari(true, pred), fg_ari(true, pred), mean_best_overlap(true, pred)
    assert scores.dtype == fg_scores.dtype == mbo.dtype == torch.float64
    torch.testing.assert_close(scores, sklearn_ari(true, pred), rtol=0, atol=ATOL)
    torch.testing.assert_close(fg_scores, sklearn_ari(true, pred, True), rtol=0, atol=ATOL)
    torch.testing.assert_close(mbo, brute_force_mbo(true, pred), rtol=0, atol=ATOL)


def test_mbo_matches_brute_force_on_random_labelings():
    rng = np.random.default_rng(6)
    for _ in range(40):
        batch_size = int(rng.integers(1, 5))
        shape = tuple(int(s) for s in rng.integers(1, 9, size=int(rng.integers(1, 3))))
        true, pred = random_labelings(rng, batch_size, shape, int(rng.integers(1, 7)), int(rng.integers(1, 7)))
        if rng.random() < 0.3:
            true, pred = true * 2**33, pred * 2**50 + 1
        torch.testing.assert_close(mean_best_overlap(true, pred), brute_force_mbo(true, pred), equal_nan=True)


def test_mbo_hand_computed_cases():
    true = torch.tensor([[0, 0, 1, 1, 1, 2], [0, 0, 0, 0, 0, 0], [1, 1, 2, 2, 0, 0]])
    pred = torch.tensor([[0, 0, 0, 1, 1, 1], [0, 1, 0, 1, 0, 1], [3, 3, 4, 4, 0, 0]])
    scores = mean_best_overlap(true, pred)
    # Example 0: object 1 best matches segment 1 (2/4) or 0 (1/5) -> 0.5; object 2 matches segment 1 (1/3).
    torch.testing.assert_close(scores[0], torch.tensor((0.5 + 1 / 3) / 2, dtype=torch.float64))
    assert torch.isnan(scores[1])  # no ground-truth objects
    assert scores[2].item() == 1.0  # perfect up to renaming


def test_mbo_counts_predicted_background_spill():
    true = torch.tensor([[0, 0, 1, 1]])
    assert mean_best_overlap(true, torch.tensor([[0, 1, 1, 1]])).item() == pytest.approx(2 / 3)
    assert mean_best_overlap(true, torch.tensor([[0, 0, 1, 1]])).item() == 1.0


@pytest.mark.parametrize("metric", [ari, fg_ari, mean_best_overlap])
@pytest.mark.parametrize(
    ("true", "pred", "message"),
    [
        (LONG(2, 4), LONG(2, 5), r"shape of true_ids \[2, 4\], got \[2, 5\]"),
        (torch.zeros(2, 4), LONG(2, 4), r"true_ids must have an integer dtype .* got torch.float32"),
        (LONG(2, 4), torch.zeros(2, 4, dtype=torch.bool), r"pred_ids must have an integer dtype"),
        (torch.tensor([[0, -3]]), torch.tensor([[0, 1]]), r"true_ids must hold non-negative ids, found -3"),
        (torch.tensor([[0, 1]]), torch.tensor([[-1, 1]]), r"pred_ids must hold non-negative ids, found -1"),
        (LONG(1, 1, 2, 2), LONG(1, 1, 2, 2), r"\[B, H, W\] or \[B, N\]"),
        (LONG(2, 0), LONG(2, 0), r"at least one pixel"),
    ],
)
def test_invalid_inputs_raise_value_error_saying_what_was_expected(metric, true, pred, message):
    with pytest.raises(ValueError, match=message):
        metric(true, pred)


_DTYPES = [torch.int64, torch.int32, torch.uint8, torch.float32, torch.bool]


@settings(max_examples=150, deadline=None)
@given(
    shape=st.lists(st.integers(0, 4), min_size=1, max_size=4),
    pred_shape_differs=st.booleans(),
    true_dtype=st.sampled_from(_DTYPES),
    pred_dtype=st.sampled_from(_DTYPES),
    low=st.integers(-2, 0),
    high=st.integers(1, 6),
    seed=st.integers(0, 2**16),
    metric=st.sampled_from([ari, fg_ari, mean_best_overlap]),
)
def test_random_inputs_work_or_raise_the_documented_value_error(
    shape, pred_shape_differs, true_dtype, pred_dtype, low, high, seed, metric
):
    gen = torch.Generator().manual_seed(seed)
    true = torch.randint(low, high, shape, generator=gen).to(true_dtype)
    pred_shape = shape[:-1] + [shape[-1] + 1] if pred_shape_differs else shape
    pred = torch.randint(low, high, pred_shape, generator=gen).to(pred_dtype)
    integer = {torch.int64, torch.int32, torch.uint8}
    valid = (
        true.dtype in integer
        and pred.dtype in integer
        and len(shape) in (2, 3)
        and not pred_shape_differs
        and 0 not in shape[1:]
        and (true.numel() == 0 or min(true.min(), pred.min()) >= 0)
    )
    if not valid:
        with pytest.raises(ValueError, match=metric.__name__):
            metric(true, pred)
        return
    score = metric(true, pred)
    assert score.dtype == torch.float64 and score.shape == (shape[0],)
    finite = score[~torch.isnan(score)]
    assert ((finite >= (0.0 if metric is mean_best_overlap else -1.0)) & (finite <= 1.0)).all()
    if metric is ari:
        assert not torch.isnan(score).any()
        torch.testing.assert_close(score, sklearn_ari(true.long(), pred.long()), rtol=0, atol=ATOL)


@pytest.mark.gpu
@pytest.mark.parametrize("metric", [ari, fg_ari, mean_best_overlap])
def test_metrics_on_cuda_equal_cpu(metric):
    rng = np.random.default_rng(7)
    true, pred = random_labelings(rng, 4, (128, 128), num_true=11, num_pred=7)
    on_gpu = metric(true.cuda(), pred.cuda())
    assert on_gpu.device.type == "cuda"
    torch.testing.assert_close(on_gpu.cpu(), metric(true, pred), rtol=0, atol=1e-12, equal_nan=True)

"""Set prediction (paper Sec. 2.3/4.2): the model, Hungarian matching, the matched Huber loss and CLEVR AP.

The oracles are brute force over permutations, `scipy.optimize.linear_sum_assignment`, and a plain transcription
of the official `average_precision_clevr` + `compute_average_precision` (google-research `slot_attention/utils.py`).
"""

import dataclasses
import itertools
import math

import numpy as np
import pytest
import scipy.optimize
import torch

from slotattn.config import ModelConfig
from slotattn.losses import hungarian_huber_loss
from slotattn.matching import hungarian_match, pairwise_huber_cost
from slotattn.metrics import ClevrAPAccumulator, clevr_average_precision
from slotattn.models.outputs import SetPredictionOutput
from slotattn.models.set_predictor import SlotAttentionSetPredictor
from param_counts import conv_params, dense_params  # tests/param_counts.py

THRESHOLDS = (-1.0, 1.0, 0.5, 0.25, 0.125)  # the official eval.py list; -1 = no threshold


# ----------------------------------------------------------------------------------------------------- model


def test_parameter_count_equals_the_official_classifier():
    """Count derived from the layer shapes of the official `SlotAttentionClassifier` (model.py)."""
    d, h = 64, 128
    encoder = conv_params(3, 64, 5) + 3 * conv_params(64, 64, 5)  # strides change no shapes of the kernels
    encoder_pos = dense_params(4, 64)
    layer_norm = 2 * 64
    feedforward = dense_params(64, 64) + dense_params(64, 64)
    slot_attention = (
        3 * 2 * d  # LayerNorms on inputs, slots, mlp
        + 2 * d  # slots_mu, slots_log_sigma
        + 3 * dense_params(d, d, bias=False)  # q, k, v
        + 3 * (d * d + d * d) + 2 * 3 * d  # Keras GRUCell (reset_after=True): kernel, recurrent kernel, 2 biases
        + dense_params(d, h) + dense_params(h, d)
    )
    classifier = dense_params(64, 64) + dense_params(64, 19)
    expected = encoder + encoder_pos + layer_norm + feedforward + slot_attention + classifier
    model = SlotAttentionSetPredictor()
    assert sum(p.numel() for p in model.parameters()) == expected == 380_755


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return SlotAttentionSetPredictor()


def test_strided_encoder_gives_32x32_features(model):
    image = torch.rand(2, 3, 128, 128) * 2 - 1
    sizes, x = [], image
    for layer in model.encoder_cnn:  # official: Conv5x5 s1, s2, s2, s1 (ReLU between), all SAME
        x = layer(x)
        if isinstance(layer, torch.nn.Conv2d):
            sizes.append(tuple(x.shape[1:]))
    assert sizes == [(64, 128, 128), (64, 64, 64), (64, 32, 32), (64, 32, 32)]
    assert model.encoder_pos.resolution == (32, 32)
    assert model.encode(image).shape == (2, 32 * 32, 64)


def test_outputs_have_documented_shapes_and_range(model):
    out = model(torch.rand(2, 3, 128, 128) * 2 - 1)
    assert isinstance(out, SetPredictionOutput)
    assert out.preds.shape == (2, 10, 19) and out.slots.shape == (2, 10, 64) and out.attn.shape == (2, 10, 1024)
    assert ((out.preds > 0) & (out.preds < 1)).all()
    torch.testing.assert_close(out.attn.sum(dim=1), torch.ones(2, 1024))
    with pytest.raises(dataclasses.FrozenInstanceError):
        out.preds = out.preds  # type: ignore[misc]


def test_preds_permute_with_slots_init(model):
    image = torch.rand(1, 3, 128, 128) * 2 - 1
    init = torch.randn(1, 10, 64)
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(0))
    out = model(image, slots_init=init)
    out_p = model(image, slots_init=init[:, perm])
    torch.testing.assert_close(out_p.preds, out.preds[:, perm], atol=1e-5, rtol=1e-4)


def test_num_slots_and_iterations_pass_through(model):
    out = model(torch.zeros(1, 3, 128, 128), num_slots=4, num_iterations=5, generator=torch.Generator().manual_seed(1))
    assert out.preds.shape == (1, 4, 19) and out.attn.shape == (1, 4, 1024)


def test_non_default_resolution_and_outputs():
    model = SlotAttentionSetPredictor.from_config(ModelConfig(resolution=(64, 48), num_slots=3, num_outputs=7,
                                                              encoder_strides=(1, 2, 2, 1)))
    assert model.feature_size == (16, 12)
    out = model(torch.zeros(2, 3, 64, 48))
    assert out.preds.shape == (2, 3, 7) and out.attn.shape == (2, 3, 16 * 12)


@pytest.mark.parametrize("shape", [(2, 3, 64, 64), (2, 1, 128, 128), (3, 128, 128)])
def test_wrong_image_shape_raises_with_expected_and_received(model, shape):
    match = r"image must be \[B, 3, 128, 128\] in \[-1, 1\], got \[" + ", ".join(map(str, shape))
    with pytest.raises(ValueError, match=match):
        model(torch.zeros(shape))


def test_gradients_reach_every_parameter_through_the_matched_loss():
    torch.manual_seed(0)
    model = SlotAttentionSetPredictor.from_config(ModelConfig(resolution=(32, 32), num_slots=4,
                                                              encoder_strides=(1, 2, 2, 1)))
    target = torch.zeros(2, 4, 19)
    target[:, :2] = torch.rand(2, 2, 19)
    target[:, :2, 18] = 1.0
    hungarian_huber_loss(model(torch.rand(2, 3, 32, 32) * 2 - 1).preds, target).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert missing == []


# -------------------------------------------------------------------------------------------------- matching


def huber(d, delta=1.0):
    d = abs(d)
    return 0.5 * d * d if d <= delta else delta * (d - 0.5 * delta)


def brute_force_min_cost(cost: np.ndarray) -> float:
    """Minimum over all one-to-one assignments of the smaller side into the larger (K, M <= 6)."""
    k, m = cost.shape
    if k <= m:
        return min(sum(cost[i, p[i]] for i in range(k)) for p in itertools.permutations(range(m), k))
    return min(sum(cost[p[j], j] for j in range(m)) for p in itertools.permutations(range(k), m))


def test_pairwise_cost_is_the_huber_loss_averaged_over_properties():
    pred = torch.randn(2, 3, 4, dtype=torch.float64) * 2
    target = torch.randn(2, 5, 4, dtype=torch.float64) * 2
    cost = pairwise_huber_cost(pred, target)
    assert cost.shape == (2, 3, 5)
    for b, k, m in itertools.product(range(2), range(3), range(5)):
        expected = np.mean([huber(float(pred[b, k, p] - target[b, m, p])) for p in range(4)])
        assert cost[b, k, m].item() == pytest.approx(expected, abs=1e-12)
    assert pairwise_huber_cost(pred, target, delta=0.5)[0, 0, 0].item() == pytest.approx(
        np.mean([huber(float(pred[0, 0, p] - target[0, 0, p]), 0.5) for p in range(4)]), abs=1e-12
    )


@pytest.mark.parametrize("num_preds, num_targets", [(1, 1), (3, 3), (6, 6), (4, 6), (6, 4), (2, 5), (5, 1)])
def test_matching_equals_brute_force_and_linear_sum_assignment(num_preds, num_targets):
    gen = torch.Generator().manual_seed(num_preds * 10 + num_targets)
    cost = torch.rand(4, num_preds, num_targets, generator=gen, dtype=torch.float64)
    pred_idx, target_idx = hungarian_match(cost)
    length = min(num_preds, num_targets)
    assert pred_idx.shape == target_idx.shape == (4, length) and pred_idx.dtype == target_idx.dtype == torch.int64
    for b in range(4):
        assert len(set(pred_idx[b].tolist())) == len(set(target_idx[b].tolist())) == length  # one-to-one
        total = cost[b, pred_idx[b], target_idx[b]].sum().item()
        assert total == pytest.approx(brute_force_min_cost(cost[b].numpy()), abs=1e-12)
        rows, cols = scipy.optimize.linear_sum_assignment(cost[b].numpy())
        assert pred_idx[b].tolist() == rows.tolist() and target_idx[b].tolist() == cols.tolist()


def test_matching_with_zero_padded_targets_pairs_real_objects_first():
    """Targets padded with zero rows, predictions near the real ones: each real target gets its own prediction."""
    target = torch.zeros(1, 6, 19)
    target[0, :3] = torch.rand(3, 19)
    target[0, :3, 18] = 1.0
    perm = torch.tensor([4, 0, 5, 2, 1, 3])
    pred = torch.full((1, 6, 19), 0.02)
    pred[0, perm[:3]] = target[0, :3] + 0.01
    cost = pairwise_huber_cost(pred, target)
    pred_idx, target_idx = hungarian_match(cost)
    pairs = dict(zip(target_idx[0].tolist(), pred_idx[0].tolist()))
    assert [pairs[m] for m in range(3)] == perm[:3].tolist()
    assert cost[0, pred_idx[0], target_idx[0]].sum().item() == pytest.approx(
        brute_force_min_cost(cost[0].numpy()), abs=1e-6
    )


def test_batched_matching_equals_one_sample_at_a_time():
    cost = torch.rand(5, 4, 6)
    pred_idx, target_idx = hungarian_match(cost)
    for b in range(5):
        single_p, single_t = hungarian_match(cost[b : b + 1])
        assert torch.equal(single_p[0], pred_idx[b]) and torch.equal(single_t[0], target_idx[b])


def test_matching_rejects_non_finite_costs_naming_the_sample():
    cost = torch.rand(3, 2, 2)
    cost[1, 0, 1] = math.nan
    with pytest.raises(ValueError, match=r"must be finite, found NaN/inf in sample\(s\) \[1\]"):
        hungarian_match(cost)


def test_pairwise_cost_rejects_mismatched_sets():
    with pytest.raises(ValueError, match=r"got pred \[2, 3, 19\] and target \[2, 3, 18\]"):
        pairwise_huber_cost(torch.zeros(2, 3, 19), torch.zeros(2, 3, 18))
    with pytest.raises(ValueError, match=r"got pred \[2, 3, 19\] and target \[3, 3, 19\]"):
        hungarian_huber_loss(torch.zeros(2, 3, 19), torch.zeros(3, 3, 19))


# ------------------------------------------------------------------------------------------------------ loss


def test_loss_on_a_hand_made_batch():
    """Official reduction: mean over properties, SUM over matched pairs, mean over the batch.

    Sample 0: cost (pred 0, target 1) = 0 and (pred 1, target 0) = (0 + huber(0.5)) / 2 = 0.0625, the crossed
    pairing costs (1.5 + 0.125) / 2 + (1.5 + 0) / 2 = 1.5625, so the sample contributes 0.0625.
    Sample 1: identical predictions, so any pairing: (huber(3) + 0) / 2 + (0 + huber(1)) / 2 = 1.25 + 0.25 = 1.5.
    Loss = (0.0625 + 1.5) / 2 = 0.78125 (a mean over pairs would give 0.390625, a sum over the batch 1.5625).
    """
    pred = torch.tensor([[[0.0, 0.0], [2.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]], dtype=torch.float64)
    target = torch.tensor([[[2.0, 0.5], [0.0, 0.0]], [[3.0, 0.0], [0.0, 1.0]]], dtype=torch.float64)
    assert hungarian_huber_loss(pred, target).item() == pytest.approx(0.78125, abs=1e-12)


def test_loss_is_invariant_to_target_and_prediction_order():
    pred, target = torch.rand(3, 5, 19), torch.rand(3, 5, 19)
    loss = hungarian_huber_loss(pred, target)
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        perm_t, perm_p = torch.randperm(5, generator=gen), torch.randperm(5, generator=gen)
        torch.testing.assert_close(hungarian_huber_loss(pred, target[:, perm_t]), loss)
        torch.testing.assert_close(hungarian_huber_loss(pred[:, perm_p], target), loss)


def test_loss_is_zero_when_predictions_are_a_permutation_of_the_targets():
    target = torch.rand(4, 6, 19)
    target[:, 4:] = 0.0  # padding rows are matched like any other
    pred = target[:, torch.tensor([3, 5, 0, 4, 1, 2])]
    assert hungarian_huber_loss(pred, target).item() == 0.0
    assert hungarian_huber_loss(pred + 0.1, target).item() > 0.0


def test_loss_with_more_slots_than_targets_sums_only_matched_pairs():
    pred, target = torch.rand(2, 10, 19), torch.rand(2, 3, 19)
    cost = pairwise_huber_cost(pred, target).numpy()
    expected = np.mean([brute_force_min_cost(cost[b].T) for b in range(2)])  # 10 * 9 * 8 assignments each
    assert hungarian_huber_loss(pred, target).item() == pytest.approx(expected, rel=1e-6)


def test_gradient_flows_only_into_predictions_and_not_through_the_assignment():
    pred = torch.rand(3, 4, 19, dtype=torch.float64, requires_grad=True)
    target = torch.rand(3, 4, 19, dtype=torch.float64, requires_grad=True)
    loss = hungarian_huber_loss(pred, target)
    loss.backward()
    assert target.grad is None
    # The same loss with the assignment frozen as constants has the same value and gradient: the indices
    # carry no gradient and nothing else depends on them.
    pred_fixed = pred.detach().clone().requires_grad_(True)
    cost = pairwise_huber_cost(pred_fixed, target.detach())
    pred_idx, target_idx = hungarian_match(cost)
    assert not pred_idx.requires_grad and not target_idx.requires_grad
    fixed = cost[torch.arange(3)[:, None], pred_idx, target_idx].sum(1).mean()
    fixed.backward()
    torch.testing.assert_close(loss.detach(), fixed.detach())
    torch.testing.assert_close(pred.grad, pred_fixed.grad)
    assert pred.grad.abs().sum() > 0


def test_non_finite_predictions_give_a_non_finite_loss_for_the_training_guard():
    pred = torch.rand(2, 3, 19)
    pred[1, 2, 5] = math.nan
    assert not torch.isfinite(hungarian_huber_loss(pred, torch.rand(2, 3, 19)))


# ------------------------------------------------------------------------------------------------ AP oracle


def official_average_precision_clevr(pred, attributes, distance_threshold):
    """Plain transcription of the official `average_precision_clevr` (tf.argmax -> np.argmax), kept as written."""
    [batch_size, _, element_size] = attributes.shape
    [_, predicted_elements, _] = pred.shape

    def unsorted_id_to_image(detection_id, predicted_elements):
        return int(detection_id // predicted_elements)

    flat_size = batch_size * predicted_elements
    flat_pred = np.reshape(pred, [flat_size, element_size])
    sort_idx = np.argsort(flat_pred[:, -1], axis=0)[::-1]
    sorted_predictions = np.take_along_axis(flat_pred, np.expand_dims(sort_idx, axis=1), axis=0)
    idx_sorted_to_unsorted = np.take_along_axis(np.arange(flat_size), sort_idx, axis=0)

    def process_targets(target):
        coords = target[:3]
        object_size = np.argmax(target[3:5])
        material = np.argmax(target[5:7])
        shape = np.argmax(target[7:10])
        color = np.argmax(target[10:18])
        real_obj = target[18]
        return coords, object_size, material, shape, color, real_obj

    true_positives = np.zeros(sorted_predictions.shape[0])
    false_positives = np.zeros(sorted_predictions.shape[0])
    detection_set = set()
    for detection_id in range(sorted_predictions.shape[0]):
        current_pred = sorted_predictions[detection_id, :]
        original_image_idx = unsorted_id_to_image(idx_sorted_to_unsorted[detection_id], predicted_elements)
        gt_image = attributes[original_image_idx, :, :]
        best_distance = 10000
        best_id = None
        (pred_coords, pred_object_size, pred_material, pred_shape, pred_color, _) = process_targets(current_pred)
        for target_object_id in range(gt_image.shape[0]):
            target_object = gt_image[target_object_id, :]
            (target_coords, target_object_size, target_material, target_shape, target_color,
             target_real_obj) = process_targets(target_object)
            if target_real_obj:
                pred_attr = [pred_object_size, pred_material, pred_shape, pred_color]
                target_attr = [target_object_size, target_material, target_shape, target_color]
                match = pred_attr == target_attr
                if match:
                    distance = np.linalg.norm((target_coords - pred_coords) * 6.0)
                    if distance < best_distance:
                        best_distance = distance
                        best_id = target_object_id
        if best_distance < distance_threshold or distance_threshold == -1:
            if best_id is not None:
                if (original_image_idx, best_id) not in detection_set:
                    true_positives[detection_id] = 1
                    detection_set.add((original_image_idx, best_id))
                else:
                    false_positives[detection_id] = 1
            else:
                false_positives[detection_id] = 1
        else:
            false_positives[detection_id] = 1
    accumulated_fp = np.cumsum(false_positives)
    accumulated_tp = np.cumsum(true_positives)
    recall_array = accumulated_tp / np.sum(attributes[:, :, -1])
    precision_array = np.divide(accumulated_tp, (accumulated_fp + accumulated_tp))
    return official_compute_average_precision(
        np.array(precision_array, dtype=np.float32), np.array(recall_array, dtype=np.float32)
    )


def official_compute_average_precision(precision, recall):
    """Plain transcription of the official `compute_average_precision`."""
    recall = recall.tolist()
    precision = precision.tolist()
    recall = [0] + recall + [1]
    precision = [0] + precision + [0]
    for i in range(len(precision) - 1, -0, -1):
        precision[i - 1] = max(precision[i - 1], precision[i])
    indices_recall = [i for i in range(len(recall) - 1) if recall[1:][i] != recall[:-1][i]]
    average_precision = 0.0
    for i in indices_recall:
        average_precision += precision[i + 1] * (recall[i + 1] - recall[i])
    return average_precision


def one_hot(rng, n, size):
    return np.eye(size)[rng.integers(0, size, n)]


def random_targets(rng, batch_size, max_objects):
    """CLEVR-layout targets: 1..max_objects real objects per image, zero-padded to max_objects rows."""
    target = np.zeros((batch_size, max_objects, 19))
    for b in range(batch_size):
        n = rng.integers(1, max_objects + 1)
        target[b, :n, :3] = rng.uniform(0, 1, (n, 3))
        target[b, :n, 3:5], target[b, :n, 5:7] = one_hot(rng, n, 2), one_hot(rng, n, 2)
        target[b, :n, 7:10], target[b, :n, 10:18] = one_hot(rng, n, 3), one_hot(rng, n, 8)
        target[b, :n, 18] = 1.0
    return target


def random_predictions(rng, target, num_slots):
    """Noisy copies of the targets (coords jittered across the thresholds, attributes sometimes wrong, some slots
    copying the same object twice) mixed with garbage slots; random confidences."""
    batch_size, max_objects, _ = target.shape
    pred = rng.uniform(0, 1, (batch_size, num_slots, 19))
    for b in range(batch_size):
        for k in range(num_slots):
            if rng.uniform() < 0.7:
                src = target[b, rng.integers(0, max_objects)]
                noisy = np.clip(src + rng.normal(0, 0.1, 19), 0, 1)
                noisy[:3] = src[:3] + rng.normal(0, rng.choice([0.005, 0.02, 0.08]), 3)
                pred[b, k, :18] = noisy[:18]
    return pred.astype(np.float32)


# ------------------------------------------------------------------------------------------------------- AP


@pytest.mark.parametrize("seed", range(40))
def test_ap_equals_the_official_transcription_on_random_cases(seed):
    rng = np.random.default_rng(seed)
    batch_size, max_objects, num_slots = rng.integers(1, 5), rng.integers(1, 8), rng.integers(1, 9)
    target = random_targets(rng, batch_size, max_objects).astype(np.float32)
    pred = random_predictions(rng, target, num_slots)
    for threshold in THRESHOLDS:
        expected = official_average_precision_clevr(pred, target, threshold)
        got = clevr_average_precision(torch.from_numpy(pred), torch.from_numpy(target), threshold)
        assert got == pytest.approx(expected, abs=1e-6), f"threshold {threshold}"


def test_random_cases_cover_every_rule():
    """The random generator above produces hits, misses and duplicate claims at every threshold."""
    rng = np.random.default_rng(0)
    values = {t: [] for t in THRESHOLDS}
    for _ in range(20):
        target = random_targets(rng, 3, 5)
        pred = random_predictions(rng, target, 8)
        for t in THRESHOLDS:
            values[t].append(clevr_average_precision(torch.from_numpy(pred), torch.from_numpy(target), t))
    for t in THRESHOLDS:
        assert 0.0 < np.mean(values[t]) < 1.0
    assert np.mean(values[-1.0]) > np.mean(values[0.125])


def clevr_objects(coords, attributes):
    """[n, 19] target rows from coords in the original [-3, 3] units and (size, material, shape, colour) ids."""
    rows = np.zeros((len(coords), 19))
    for i, ((x, y, z), (size, material, shape, colour)) in enumerate(zip(coords, attributes)):
        rows[i, :3] = (np.array([x, y, z]) + 3.0) / 6.0
        rows[i, 3 + size] = rows[i, 5 + material] = rows[i, 7 + shape] = rows[i, 10 + colour] = 1.0
        rows[i, 18] = 1.0
    return rows


@pytest.fixture()
def scene():
    """Two images, 3 and 2 objects, zero-padded to 4 rows."""
    target = np.zeros((2, 4, 19))
    target[0, :3] = clevr_objects([(-2.0, 1.0, 0.35), (0.5, -0.5, 0.7), (2.5, 2.0, 0.35)],
                                  [(0, 1, 2, 3), (1, 0, 0, 7), (0, 0, 1, 0)])
    target[1, :2] = clevr_objects([(1.0, 1.0, 0.35), (-1.0, -2.0, 0.7)], [(1, 1, 0, 5), (0, 1, 2, 2)])
    return target


def predictions_from(target, num_slots=5):
    """Slots copying the real targets (confidence 0.9), the rest empty (confidence 0.1)."""
    pred = np.zeros((target.shape[0], num_slots, 19))
    pred[..., 18] = 0.1
    for b in range(target.shape[0]):
        real = target[b, target[b, :, 18] == 1]
        pred[b, : len(real)] = real
        pred[b, : len(real), 18] = 0.9
    return pred


def ap_all(pred, target):
    acc = ClevrAPAccumulator()
    acc.update(torch.from_numpy(pred), torch.from_numpy(target))
    return acc.compute()


def test_perfect_predictions_score_one_at_every_threshold(scene):
    assert ap_all(predictions_from(scene), scene) == {
        "ap@inf": 1.0, "ap@1": 1.0, "ap@0.5": 1.0, "ap@0.25": 1.0, "ap@0.125": 1.0
    }


def test_wrong_colour_scores_zero_at_every_threshold(scene):
    pred = predictions_from(scene)
    colour = pred[..., 10:18].argmax(-1)
    pred[..., 10:18] = np.eye(8)[(colour + 1) % 8]
    assert set(ap_all(pred, scene).values()) == {0.0}


def test_coordinates_off_by_0_3_count_at_0_5_but_not_at_0_25(scene):
    """0.3 in CLEVR's [-3, 3] units is 0.3 / 6 in the normalised coordinates."""
    pred = predictions_from(scene)
    pred[..., 0] += 0.3 / 6.0
    assert ap_all(pred, scene) == {"ap@inf": 1.0, "ap@1": 1.0, "ap@0.5": 1.0, "ap@0.25": 0.0, "ap@0.125": 0.0}
    official = [official_average_precision_clevr(pred, scene, t) for t in THRESHOLDS]
    assert official == pytest.approx([1.0, 1.0, 1.0, 0.0, 0.0])


def test_nearest_target_already_claimed_is_a_false_positive_without_fallback():
    """Two same-attribute targets A (x=0) and B (x=0.4). P1 (conf 0.9) sits on A; P2 (conf 0.8) at x=0.15 is
    nearest to A, already claimed, so it is a false positive even though B is within 0.5 of it.
    Sequence TP, FP over 2 real objects: precision (1, 0.5), recall (0.5, 0.5): AP 0.5 (a fallback gives 1.0)."""
    target = clevr_objects([(0.0, 0.0, 0.0), (0.4, 0.0, 0.0)], [(0, 0, 0, 0)] * 2)[None]
    pred = clevr_objects([(0.0, 0.0, 0.0), (0.15, 0.0, 0.0)], [(0, 0, 0, 0)] * 2)[None]
    pred[0, :, 18] = [0.9, 0.8]
    assert clevr_average_precision(torch.from_numpy(pred), torch.from_numpy(target), 0.5) == pytest.approx(0.5)
    assert official_average_precision_clevr(pred, target, 0.5) == pytest.approx(0.5)
    pred[0, :, 18] = [0.8, 0.9]  # P2 first: it claims A, then P1's nearest is A again
    assert clevr_average_precision(torch.from_numpy(pred), torch.from_numpy(target), 0.5) == pytest.approx(0.5)


def test_prediction_is_matched_only_within_its_own_image():
    target = np.zeros((2, 1, 19))
    target[0, 0] = clevr_objects([(0.0, 0.0, 0.0)], [(0, 0, 0, 0)])[0]
    target[1, 0] = clevr_objects([(0.0, 0.0, 0.0)], [(1, 1, 1, 1)])[0]
    pred = target[::-1].copy()  # each image predicts the other image's object
    assert clevr_average_precision(torch.from_numpy(pred), torch.from_numpy(target), -1) == 0.0


def test_threshold_minus_one_is_infinity(scene):
    pred = predictions_from(scene)
    pred[..., :3] += np.random.default_rng(0).normal(0, 0.1, pred[..., :3].shape)
    value = clevr_average_precision(torch.from_numpy(pred), torch.from_numpy(scene), -1)
    assert value == clevr_average_precision(torch.from_numpy(pred), torch.from_numpy(scene), math.inf)
    assert value == 1.0 > clevr_average_precision(torch.from_numpy(pred), torch.from_numpy(scene), 0.25)


def test_streaming_equals_all_at_once():
    rng = np.random.default_rng(7)
    target = random_targets(rng, 12, 6)
    pred = random_predictions(rng, target, 7)
    whole = ap_all(pred, target)
    acc = ClevrAPAccumulator()
    for start, stop in [(0, 5), (5, 6), (6, 12)]:
        acc.update(torch.from_numpy(pred[start:stop]), torch.from_numpy(target[start:stop]))
    assert acc.compute() == whole
    assert list(whole) == ["ap@inf", "ap@1", "ap@0.5", "ap@0.25", "ap@0.125"]
    for t, key in zip(THRESHOLDS, whole):
        assert whole[key] == pytest.approx(official_average_precision_clevr(pred, target, t), abs=1e-6)
    acc.reset()
    with pytest.raises(ValueError, match="no batches were added"):
        acc.compute()


def test_ap_without_real_targets_is_nan():
    assert math.isnan(clevr_average_precision(torch.rand(2, 3, 19), torch.zeros(2, 4, 19), 0.5))


def test_ap_rejects_bad_inputs_with_expected_and_found():
    with pytest.raises(ValueError, match=r"pred must be \[B, \*, 19\], got \[2, 3, 18\]"):
        clevr_average_precision(torch.rand(2, 3, 18), torch.zeros(2, 3, 19), 1.0)
    with pytest.raises(ValueError, match=r"same batch size, got \[2, 3, 19\] and \[3, 3, 19\]"):
        clevr_average_precision(torch.rand(2, 3, 19), torch.zeros(3, 3, 19), 1.0)
    target = torch.zeros(2, 3, 19)
    target[0, 0, 18] = 0.5
    with pytest.raises(ValueError, match=r"target\[\.\.\., 18\] must be 0 or 1, found \[0\.0, 0\.5\]"):
        clevr_average_precision(torch.rand(2, 3, 19), target, 1.0)
    with pytest.raises(ValueError, match=r"threshold must be >= 0, -1 or inf, got -0.5"):
        clevr_average_precision(torch.rand(2, 3, 19), torch.zeros(2, 3, 19), -0.5)

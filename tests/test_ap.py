"""CLEVR average precision for set prediction: `slotattn.metrics.ap` (`clevr_average_precision`, `ClevrAPAccumulator`).

The oracle is a plain transcription of the official `average_precision_clevr` + `compute_average_precision`
(google-research `slot_attention/utils.py`).
"""

import math

import numpy as np
import pytest
import torch

from slotattn.metrics import ClevrAPAccumulator, clevr_average_precision

THRESHOLDS = (-1.0, 1.0, 0.5, 0.25, 0.125)  # the official eval.py list; -1 = no threshold


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

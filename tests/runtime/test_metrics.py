import numpy as np
import pytest
import torch
from monai.metrics import (
    compute_confusion_matrix_metric,
    compute_dice,
    compute_hausdorff_distance,
    get_confusion_matrix,
)

from fedbrats.evaluation.evaluate import COLUMNS, case_scores, summary
from fedbrats.runtime.constants import SCORE_METRICS
from fedbrats.runtime.metrics import (
    HD95_MAX_MM,
    case_metrics,
    detection_scores,
    region_scores,
    site_metrics,
    without_case_order,
)


def cubes(offset, size=2, shape=(24, 12, 12)):
    """Two size^3 cubes, the second moved by ``offset`` voxels."""
    a, b = np.zeros(shape, bool), np.zeros(shape, bool)
    start = np.array([2, 4, 4])
    a[tuple(slice(s, s + size) for s in start)] = True
    b[tuple(slice(s, s + size) for s in start + np.array(offset))] = True
    return a, b


def test_hd95_of_two_cubes_in_millimetres():
    # 2-voxel cubes 10 voxels apart along x at 1.5 mm: the nearest voxels of the far face lie 10 x 1.5 = 15 mm away
    a, b = cubes((10, 0, 0))
    scores = region_scores(a, b, spacing=(1.5, 1.0, 1.0))
    assert scores["dice"] == 0.0
    assert scores["hd95"] == pytest.approx(15.0)
    # moved by one voxel along z at 2 mm: half of each cube overlaps, every surface voxel is within 2 mm
    a, b = cubes((0, 0, 1))
    scores = region_scores(a, b, spacing=(1.5, 1.0, 2.0))
    assert scores["dice"] == pytest.approx(0.5)
    assert scores["hd95"] == pytest.approx(2.0)


@pytest.mark.filterwarnings("ignore:.*always_return_as_numpy:FutureWarning")
def test_scores_on_the_masks_bounding_box_equal_monai_on_the_whole_volume():
    rng = np.random.default_rng(0)
    pred, ref = np.zeros((30, 20, 16), bool), np.zeros((30, 20, 16), bool)
    pred[0:9, 3:12, 5:16] = rng.random((9, 9, 11)) > 0.3  # touches three faces of the volume
    ref[2:14, 4:15, 6:15] = rng.random((12, 11, 9)) > 0.2
    spacing = (1.5, 1.0, 2.0)
    y_pred, y = torch.as_tensor(pred)[None, None], torch.as_tensor(ref)[None, None]
    expected_hd95 = compute_hausdorff_distance(y_pred, y, include_background=True, percentile=95, spacing=spacing)
    scores = region_scores(pred, ref, spacing)
    assert scores["hd95"] == pytest.approx(float(expected_hd95))
    assert scores["dice"] == pytest.approx(float(compute_dice(y_pred, y, include_background=True)))


def test_empty_regions_follow_the_brats_conventions():
    empty = np.zeros((8, 8, 8), bool)
    full = empty.copy()
    full[2:4, 2:4, 2:4] = True  # 8 of 512 voxels
    assert region_scores(empty, empty, (1, 1, 1)) == {"dice": 1.0, "hd95": 0.0, "sensitivity": 1.0, "specificity": 1.0}
    # predicted where the reference has none: sensitivity 0 (CaPTk), 8 false positives among 512 negatives
    assert region_scores(full, empty, (1, 1, 1)) == {
        "dice": 0.0,
        "hd95": HD95_MAX_MM,
        "sensitivity": 0.0,
        "specificity": 504 / 512,
    }
    assert region_scores(empty, full, (1, 1, 1)) == {
        "dice": 0.0,
        "hd95": HD95_MAX_MM,
        "sensitivity": 0.0,
        "specificity": 1.0,
    }
    assert HD95_MAX_MM == pytest.approx(np.sqrt(240**2 + 240**2 + 155**2), abs=0.005)
    everywhere = np.ones((8, 8, 8), bool)  # no negatives in the reference: no false positive possible
    assert detection_scores(full, everywhere) == {"sensitivity": 8 / 512, "specificity": 1.0}


def test_sensitivity_and_specificity_of_a_hand_counted_pair():
    ref, pred = np.zeros((4, 4, 4), bool), np.zeros((4, 4, 4), bool)
    ref[0:2, 0:2, 0:2] = True  # 8 voxels
    pred[0:2, 0:2, 1:3] = True  # 8 voxels, 4 of them in the reference
    # TP 4, FP 4, FN 4, TN 64 - 12 = 52
    scores = region_scores(pred, ref, (1, 1, 1))
    assert scores["sensitivity"] == 4 / (4 + 4) == 0.5
    assert scores["specificity"] == 52 / (52 + 4) == pytest.approx(0.9285714)
    assert scores["dice"] == pytest.approx(0.5)
    matrix = get_confusion_matrix(torch.as_tensor(pred).float()[None, None], torch.as_tensor(ref).float()[None, None])
    for name in ("sensitivity", "specificity"):
        assert scores[name] == pytest.approx(float(compute_confusion_matrix_metric(name, matrix)))


def test_case_scores_per_region():
    ref = np.zeros((10, 10, 10), np.uint8)
    ref[2:6, 2:6, 2:6] = 2
    ref[3:5, 3:5, 3:5] = 1
    pred = ref.copy()
    pred[pred == 1] = 2  # no core predicted: TC and ET empty in the prediction, ET empty in the reference
    scores = case_scores(pred, ref, (1.0, 1.0, 1.0))
    assert list(scores) == list(SCORE_METRICS)
    assert scores["dice_wt"] == 1.0 and scores["hd95_wt"] == 0.0
    assert scores["dice_tc"] == 0.0 and scores["hd95_tc"] == HD95_MAX_MM
    assert scores["dice_et"] == 1.0 and scores["hd95_et"] == 0.0
    assert (scores["sensitivity_wt"], scores["specificity_wt"]) == (1.0, 1.0)
    assert (scores["sensitivity_tc"], scores["specificity_tc"]) == (0.0, 1.0)  # 8 core voxels missed, none invented
    assert (scores["sensitivity_et"], scores["specificity_et"]) == (1.0, 1.0)


def test_summary_statistics():
    rows = [{c: v for c in COLUMNS} for v in (0, 1, 2, 3)]
    stats = summary(rows)
    quartiles = {"median": 1.5, "25quantile": 0.75, "75quantile": 2.25}
    assert stats["hd95_et"] == {"mean": 1.5, "std": pytest.approx(np.sqrt(1.25)), **quartiles}
    assert stats["specificity_tc"] == stats["hd95_et"] and set(stats) == set(SCORE_METRICS)


def region_masks(tc, wt, et, shape=(8, 8, 8)):
    """Region masks (TC, WT, ET) each filling a small cube or empty."""
    masks = np.zeros((3, *shape), bool)
    for k, on in enumerate((tc, wt, et)):
        if on:
            masks[k, 2:5, 2:5, 2:5] = True
    return masks


def test_a_site_counts_the_cases_that_hold_each_region():
    cases = [
        case_metrics(region_masks(1, 1, 1), region_masks(1, 1, 1), (1, 1, 1)),  # ET present and found: Dice 1
        case_metrics(region_masks(1, 1, 0), region_masks(1, 1, 1), (1, 1, 1)),  # ET present, missed: Dice 0
        case_metrics(region_masks(1, 1, 0), region_masks(1, 1, 0), (1, 1, 0)),  # no ET, none predicted: Dice 1
        case_metrics(region_masks(1, 1, 1), region_masks(1, 1, 0), (1, 1, 1)),  # no ET, some predicted: Dice 0
    ]
    metrics = site_metrics(cases)
    assert metrics["dice_et"] == 0.5 and metrics["n_cases"] == 4
    # 27-voxel cubes in 512 voxels: only the ET predicted where the reference has none has false positives
    assert metrics["per_case"]["sensitivity_et"] == [1.0, 0.0, 1.0, 0.0]
    assert metrics["per_case"]["specificity_et"] == [1.0, 1.0, 1.0, (512 - 27) / 512]
    assert metrics["sensitivity_et"] == 0.5 and metrics["specificity_et"] == pytest.approx((3 + 485 / 512) / 4)
    assert metrics["sensitivity_wt"] == 1.0 and metrics["specificity_wt"] == 1.0
    assert (metrics["cases_with_et"], metrics["empty_both_et"], metrics["dice_with_et"]) == (2, 1, 0.5)
    assert (metrics["cases_with_wt"], metrics["empty_both_wt"], metrics["dice_with_wt"]) == (4, 0, 1.0)
    assert metrics["per_case"]["dice_et"] == [1.0, 0.0, 1.0, 0.0]  # at the site: the cases' order
    assert set(metrics["per_case"]) == set(SCORE_METRICS)
    no_et = site_metrics(cases[2:3])
    assert (no_et["cases_with_et"], no_et["empty_both_et"], no_et["dice_with_et"]) == (0, 1, None)


def test_what_a_site_sends_has_no_case_order():
    metrics = site_metrics(
        [case_metrics(region_masks(1, 1, e), region_masks(1, 1, 1), (1, 1, 1)) for e in (1, 0, 1, 0, 0)]
    )
    sent = without_case_order(metrics)
    assert metrics["per_case"]["dice_et"] == [1.0, 0.0, 1.0, 0.0, 0.0]
    assert sent["per_case"]["dice_et"] == [0.0, 0.0, 0.0, 1.0, 1.0]
    assert sent["per_case"]["hd95_et"] == sorted(metrics["per_case"]["hd95_et"])
    assert metrics["per_case"]["sensitivity_et"] == [1.0, 0.0, 1.0, 0.0, 0.0]
    assert sent["per_case"]["sensitivity_et"] == [0.0, 0.0, 0.0, 1.0, 1.0]
    assert {k: v for k, v in sent.items() if k != "per_case"} == {k: v for k, v in metrics.items() if k != "per_case"}

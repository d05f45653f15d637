"""Dice, HD95 (mm), sensitivity and specificity of the tumour regions with the BraTS conventions for empty regions;
a site's metric dict.

Both masks of a region empty: Dice 1 and HD95 0. One empty: Dice 0 and HD95 :data:`HD95_MAX_MM`. Otherwise
MONAI's ``compute_dice`` and ``compute_hausdorff_distance`` (95th percentile, symmetric: the larger of the two
directed 95th percentiles of the distances between the masks' surfaces) with the voxel spacing of the grid.

Sensitivity TP / (TP + FN) and specificity TN / (TN + FP) count every voxel of the grid scored, background outside
the brain included, as the BraTS and FeTS evaluation (CaPTk's ``GetBraTSLabelStatistics``) does. Reference region
empty: sensitivity 1 when the prediction is empty too, else 0 (CaPTk's rule). Reference filling the whole grid (no
negatives, no false positive possible): specificity 1.
"""

import math
import warnings
from typing import Dict, List, Sequence

import numpy as np
import torch
from monai.metrics import compute_dice, compute_hausdorff_distance

from fedbrats.runtime.constants import (
    CASES_WITH,
    DICE,
    DICE_METRICS,
    DICE_WITH,
    EMPTY_BOTH,
    HD95,
    MEAN_DICE,
    N_CASES,
    PER_CASE,
    PRESENT,
    REGIONS,
    SCORE_METRICS,
    SENSITIVITY,
    SPECIFICITY,
    metric_name,
)

HD95_MAX_MM = 373.13
"""HD95 when one of the two masks is empty: the diagonal of the BraTS volume, 240 x 240 x 155 voxels of 1 mm
(sqrt(240^2 + 240^2 + 155^2) = 373.13 mm), the value the BraTS evaluation uses."""


def union_box(pred: np.ndarray, ref: np.ndarray) -> tuple:
    """Slices of the bounding box of ``pred | ref`` grown by one voxel (clipped to the volume).

    MONAI crops the same way before it finds the surfaces; cropping first only saves full-volume passes.
    """
    union = pred | ref
    box = []
    for axis in range(union.ndim):
        hits = np.flatnonzero(union.any(axis=tuple(a for a in range(union.ndim) if a != axis)))
        box.append(slice(max(int(hits[0]) - 1, 0), int(hits[-1]) + 2))
    return tuple(box)


def detection_scores(pred: np.ndarray, ref: np.ndarray) -> Dict[str, float]:
    """Sensitivity and specificity of two boolean masks of one region over every voxel of their grid."""
    pred, ref = np.asarray(pred, bool), np.asarray(ref, bool)
    n_pred, n_ref = int(np.count_nonzero(pred)), int(np.count_nonzero(ref))
    tp = int(np.count_nonzero(pred & ref)) if n_pred and n_ref else 0
    negatives = pred.size - n_ref
    return {
        SENSITIVITY: tp / n_ref if n_ref else float(n_pred == 0),
        SPECIFICITY: (negatives - (n_pred - tp)) / negatives if negatives else 1.0,
    }


def region_scores(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]) -> Dict[str, float]:
    """Dice, HD95 (mm), sensitivity and specificity of two boolean masks of one region on a grid of voxel size
    ``spacing``."""
    pred, ref = np.asarray(pred, bool), np.asarray(ref, bool)
    detection = detection_scores(pred, ref)
    if not pred.any() and not ref.any():
        return {DICE: 1.0, HD95: 0.0, **detection}
    if not pred.any() or not ref.any():
        return {DICE: 0.0, HD95: HD95_MAX_MM, **detection}
    box = union_box(pred, ref)
    y_pred = torch.as_tensor(pred[box])[None, None]
    y = torch.as_tensor(ref[box])[None, None]
    dice = compute_dice(y_pred, y, include_background=True, ignore_empty=False)
    with warnings.catch_warnings():  # MONAI 1.5+ warns about an argument its own distance code still passes
        warnings.filterwarnings("ignore", message=".*always_return_as_numpy", category=FutureWarning)
        hd95 = compute_hausdorff_distance(y_pred, y, include_background=True, percentile=95, spacing=list(spacing))
    return {DICE: float(dice), HD95: float(hd95), **detection}


def case_metrics(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]) -> Dict[str, float]:
    """``dice_tc`` ... ``specificity_et`` (:data:`~fedbrats.runtime.constants.SCORE_METRICS`) of one case's region
    masks (TC, WT, ET, ...), channel first, and whether the reference holds each region (``present_tc`` ...: 1 or
    0)."""
    out = {}
    for k, region in enumerate(REGIONS):
        for metric, value in region_scores(pred[k], ref[k], spacing).items():
            out[metric_name(metric, region)] = value
        out[metric_name(PRESENT, region)] = float(np.asarray(ref[k]).any())
    return out


def region_counts(dice: Sequence[float], present: Sequence[float], region: str) -> Dict[str, object]:
    """``cases_with_<region>``, ``empty_both_<region>`` and ``dice_with_<region>`` of one region's per-case Dice and
    the reference's presence of the region, case by case (:data:`~fedbrats.runtime.constants.REGION_COUNTS`)."""
    with_region = [d for d, p in zip(dice, present) if p]
    return {
        metric_name(CASES_WITH, region): len(with_region),
        metric_name(EMPTY_BOTH, region): sum(1 for d, p in zip(dice, present) if not p and d == 1.0),
        metric_name(DICE_WITH, region): sum(with_region) / len(with_region) if with_region else None,
    }


def site_metrics(cases: List[Dict[str, float]]) -> Dict[str, object]:
    """A site's metric dict: mean Dice, HD95, sensitivity and specificity per region, mean Dice over the regions, case
    count, the cases that hold each region (:func:`region_counts`), and :data:`~fedbrats.runtime.constants.PER_CASE`
    values (numbers in the order of the cases, without their names; :func:`without_case_order` before they leave a
    site)."""
    per_case = {name: [float(c[name]) for c in cases] for name in SCORE_METRICS}
    out: Dict[str, object] = {name: sum(v) / len(v) if v else math.nan for name, v in per_case.items()}
    out[MEAN_DICE] = sum(out[name] for name in DICE_METRICS) / len(DICE_METRICS)
    out[N_CASES] = len(cases)
    for region in REGIONS:
        present = [c.get(metric_name(PRESENT, region), 1.0) for c in cases]
        out.update(region_counts(per_case[metric_name(DICE, region)], present, region))
    out[PER_CASE] = per_case
    return out


def without_case_order(metrics: Dict[str, object]) -> Dict[str, object]:
    """``metrics`` with each per-case list sorted: what a site sends. Each list on its own, so no value can be tied to
    a case of the site's datalist by its position, nor one metric's value of a case to another's."""
    out = dict(metrics)
    if isinstance(out.get(PER_CASE), dict):
        out[PER_CASE] = {name: sorted(values) for name, values in out[PER_CASE].items()}
    return out

"""Dice and HD95 of the tumour regions of one case, in millimetres, with the BraTS conventions for empty regions.

Both masks empty: Dice 1 and HD95 0. One empty: Dice 0 and HD95 :data:`HD95_MAX_MM`. Otherwise MONAI's
``compute_dice`` and ``compute_hausdorff_distance`` (95th percentile, symmetric: the larger of the two directed
95th percentiles of the distances between the masks' surfaces) on the voxel spacing of the case.
"""

import warnings
from typing import Dict, Sequence

import numpy as np
import torch
from monai.metrics import compute_dice, compute_hausdorff_distance

from ..constants import REGIONS
from .regions import label_regions

HD95_MAX_MM = 373.13
"""HD95 when one of the two masks is empty: the diagonal of the BraTS volume, 240 x 240 x 155 voxels of 1 mm
(sqrt(240^2 + 240^2 + 155^2) = 373.13 mm), the value the BraTS evaluation uses."""
METRICS = ("Dice", "HD95")


def metric_name(metric: str, region: str) -> str:
    """Column name, e.g. ``Dice_TC`` or ``HD95_ET``."""
    return f"{metric}_{region}"


COLUMNS = tuple(metric_name(m, r) for m in METRICS for r in REGIONS)


def region_scores(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]) -> Dict[str, float]:
    """Dice and HD95 (mm) of two boolean masks of one region on a grid of voxel size ``spacing``."""
    if not pred.any() and not ref.any():
        return {"Dice": 1.0, "HD95": 0.0}
    if not pred.any() or not ref.any():
        return {"Dice": 0.0, "HD95": HD95_MAX_MM}
    y_pred = torch.as_tensor(pred)[None, None]
    y = torch.as_tensor(ref)[None, None]
    dice = compute_dice(y_pred, y, include_background=True, ignore_empty=False)
    with warnings.catch_warnings():  # MONAI 1.5+ warns about an argument its own distance code still passes
        warnings.filterwarnings("ignore", message=".*always_return_as_numpy", category=FutureWarning)
        hd95 = compute_hausdorff_distance(y_pred, y, include_background=True, percentile=95, spacing=list(spacing))
    return {"Dice": float(dice), "HD95": float(hd95)}


def case_scores(pred_labels: np.ndarray, ref_labels: np.ndarray, spacing: Sequence[float]) -> Dict[str, float]:
    """``Dice_TC`` ... ``HD95_ET`` of a predicted label map against the reference on one grid."""
    pred, ref = label_regions(pred_labels), label_regions(ref_labels)
    out = {}
    for k, region in enumerate(REGIONS):
        for metric, value in region_scores(pred[k], ref[k], spacing).items():
            out[metric_name(metric, region)] = value
    return {c: out[c] for c in COLUMNS}


STATISTICS = ("mean", "std", "median", "25quantile", "75quantile")


def summary(rows: Sequence[Dict[str, float]]) -> Dict[str, Dict[str, float]]:
    """Mean, standard deviation (population, ddof 0), median and quartiles of every column over the cases."""
    out = {}
    for column in COLUMNS:
        values = np.array([r[column] for r in rows], dtype=np.float64)
        q25, median, q75 = np.percentile(values, [25, 50, 75])
        out[column] = {
            "mean": float(values.mean()),
            "std": float(values.std()),
            "median": float(median),
            "25quantile": float(q25),
            "75quantile": float(q75),
        }
    return out

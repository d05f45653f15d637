"""Dice and HD95 (mm) of the tumour regions of one case's label maps, and their summary over cases.

The scores of one region and the BraTS conventions for empty regions are the site runtime's
(:mod:`fedbrats.runtime.metrics`), so ``fedbrats evaluate`` and the sites' validation count alike.
"""

from typing import Dict, Sequence

import numpy as np

from fedbrats.evaluation.regions import label_regions
from fedbrats.runtime.constants import REGIONS
from fedbrats.runtime.metrics import HD95_MAX_MM, region_scores

__all__ = ["HD95_MAX_MM", "region_scores", "case_scores", "summary", "metric_name", "COLUMNS", "STATISTICS"]
METRICS = ("Dice", "HD95")


def metric_name(metric: str, region: str) -> str:
    """Column name, e.g. ``Dice_TC`` or ``HD95_ET``."""
    return f"{metric}_{region}"


COLUMNS = tuple(metric_name(m, r) for m in METRICS for r in REGIONS)


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

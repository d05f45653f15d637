"""How an exported model compares with PyTorch on one synthetic input: logits, thresholded regions and CPU time."""

import statistics
import time
from typing import Callable, Dict, Sequence

import numpy as np

from fedbrats.runtime.constants import DICE, REGIONS, metric_name

Runner = Callable[[np.ndarray], np.ndarray]
"""Maps a batch (1, 4, x, y, z) of float32 to region logits (1, 3, x, y, z)."""
MAX_ABS_DIFF = 1e-3
"""Largest difference of logits an export may show against PyTorch: float32 runtimes differ by rounding only."""


def synthetic_input(size: Sequence[int], seed: int = 0) -> np.ndarray:
    """A batch of one standard-normal image of 4 channels: what the model sees after z-score normalisation."""
    return np.random.default_rng(seed).standard_normal((1, 4, *size)).astype(np.float32)


def median_seconds(run: Runner, image: np.ndarray, repeats: int) -> float:
    """Median wall time of ``repeats`` runs after one warm-up run."""
    run(image)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(image)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def region_dice(masks: np.ndarray, reference: np.ndarray) -> Dict[str, float]:
    """``dice_tc`` ... of each region's mask against the reference's (1 when both are empty)."""
    out = {}
    for k, region in enumerate(REGIONS):
        a, b = masks[0, k], reference[0, k]
        total = int(a.sum()) + int(b.sum())
        out[metric_name(DICE, region)] = 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total
    return out


def compare(logits: np.ndarray, reference: np.ndarray) -> Dict[str, object]:
    """Largest logit difference, Dice of the regions thresholded at 0.5 and voxels whose region differs."""
    masks, reference_masks = logits > 0, reference > 0
    diff = float(np.abs(logits.astype(np.float64) - reference).max())
    return {
        "max_abs_diff": diff,
        "dice": region_dice(masks, reference_masks),
        "differing_voxels": int((masks != reference_masks).sum()),
        "matches": diff <= MAX_ABS_DIFF,
    }

"""Click consistency: what a click points at is in its region (positive) or out of it (negative), whatever the
network says, and the regions stay nested (ET inside TC inside WT)."""

from typing import Sequence

import numpy as np

from fedbrats.runtime.constants import REGIONS
from fedbrats.runtime.interactive.clicks import Click

RADIUS = 2.0
"""Radius in voxels of the ball a click forces."""
_TC, _WT, _ET = (REGIONS.index(r) for r in ("TC", "WT", "ET"))
INSIDE = {_ET: (_ET, _TC, _WT), _TC: (_TC, _WT), _WT: (_WT,)}
"""The regions a voxel of a region lies in as well."""
HOLDS = {_WT: (_WT, _TC, _ET), _TC: (_TC, _ET), _ET: (_ET,)}
"""The regions a voxel outside a region is outside of as well."""


def nested(masks: np.ndarray) -> np.ndarray:
    """Region masks (TC, WT, ET) with ET inside TC and TC inside WT: each inner region added to the outer ones."""
    masks = np.array(masks, dtype=bool)
    masks[_TC] |= masks[_ET]
    masks[_WT] |= masks[_TC]
    return masks


def _ball(shape: Sequence[int], centre: Sequence[int], radius: float) -> tuple:
    """(slices, mask) of the voxels within ``radius`` of ``centre``, clipped to the grid."""
    r = int(np.floor(radius))
    box = tuple(slice(max(c - r, 0), min(c + r + 1, s)) for c, s in zip(centre, shape))
    axes = np.ogrid[tuple(slice(b.start - c, b.stop - c) for b, c in zip(box, centre))]
    return box, sum(a.astype(float) ** 2 for a in axes) <= radius**2


def force_clicks(masks: np.ndarray, clicks: Sequence[Click], radius: float = RADIUS) -> np.ndarray:
    """Nested region masks (TC, WT, ET) that agree with every click: a ball of ``radius`` voxels around each click
    in its region (with the regions around it) or out of it (with the regions inside it), in the clicks' order, then
    each click's own voxel again, so that only two clicks on one voxel that contradict each other can undo one."""
    masks = nested(masks)
    shape = masks.shape[1:]
    inside = [c for c in clicks if all(0 <= p < s for p, s in zip(c.position, shape))]
    for size in (radius, 0.0):
        for click in inside:
            box, ball = _ball(shape, click.position, size)
            for k in (INSIDE if click.positive else HOLDS)[click.channel]:
                masks[k][box] = np.where(ball, click.positive, masks[k][box])
    return masks

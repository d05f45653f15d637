"""Clicks on a case, and the clicks a simulated user makes where a segmentation is wrong.

Training draws its clicks as MONAI's deepgrow does (``FindDiscrepancyRegionsd``, ``AddRandomGuidanced``: a voxel of
the larger of the missed and the false part, drawn the more often the deeper it lies); evaluation clicks at the
centre of the largest wrong part, the voxel farthest from its border, so that a run of clicks is repeatable.
"""

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
from monai.apps.deepgrow.transforms import AddRandomGuidanced, FindDiscrepancyRegionsd
from scipy import ndimage

from fedbrats.runtime.constants import CLICK_REGIONS


@dataclass(frozen=True)
class Click:
    """A click: ``position`` (three voxel indices on the grid of the volume clicked, for a user the case's own
    NIfTI grid as stored), whether it says the voxel belongs to ``region`` (``positive``) or not, and the region:
    ``tc``, ``wt`` or ``et`` (:data:`~fedbrats.runtime.constants.CLICK_REGIONS`)."""

    position: Tuple[int, int, int]
    positive: bool
    region: str

    def __post_init__(self):
        if self.region not in CLICK_REGIONS:
            raise ValueError(f"a click's region must be one of {CLICK_REGIONS}, got {self.region!r}")
        if len(self.position) != 3:
            raise ValueError(f"a click's position must be 3 voxel indices, got {self.position!r}")
        object.__setattr__(self, "position", tuple(int(p) for p in self.position))

    @property
    def channel(self) -> int:
        """The region's channel in the model's outputs (TC, WT, ET)."""
        return CLICK_REGIONS.index(self.region)


def discrepancy(reference: np.ndarray, prediction: np.ndarray) -> List[np.ndarray]:
    """(missed, false) voxels of one region's masks, as float masks (MONAI's ``FindDiscrepancyRegionsd``)."""
    return FindDiscrepancyRegionsd.disparity(np.asarray(reference, np.float32), np.asarray(prediction, np.float32))


def centre_click(reference: np.ndarray, prediction: np.ndarray, region: str) -> Optional[Click]:
    """The click of a user correcting one region: at the voxel farthest from the border of the largest connected
    wrong part (missed: a positive click, false: a negative one); None when the masks agree."""
    best = None
    for positive, wrong in zip((True, False), discrepancy(reference, prediction)):
        if not wrong.any():
            continue
        parts, n = ndimage.label(wrong)
        sizes = np.bincount(parts.ravel())[1:]
        largest = int(np.argmax(sizes)) + 1
        if best is None or sizes[largest - 1] > best[0]:
            depth = ndimage.distance_transform_edt(np.pad(parts == largest, 1))[1:-1, 1:-1, 1:-1]
            position = np.unravel_index(int(np.argmax(depth)), depth.shape)
            best = (sizes[largest - 1], Click(position, positive, region))
    return None if best is None else best[1]


def centre_clicks(reference: np.ndarray, prediction: np.ndarray) -> List[Click]:
    """One :func:`centre_click` per region where the region masks (TC, WT, ET, ...) disagree."""
    clicks = (centre_click(reference[k], prediction[k], r) for k, r in enumerate(CLICK_REGIONS))
    return [c for c in clicks if c is not None]


class RandomClicks(AddRandomGuidanced):
    """Training clicks, drawn as MONAI's ``AddRandomGuidanced`` draws them, with its random state."""

    def click(self, reference: np.ndarray, prediction: np.ndarray, region: str) -> Optional[Click]:
        """A click correcting one region's ``prediction``; None when it agrees with ``reference``."""
        missed, false = (d[None] for d in discrepancy(reference, prediction))
        positive, negative = self.add_guidance([missed, false], True)
        point = positive or negative
        return None if point is None else Click(tuple(point[-3:]), positive is not None, region)

    def clicks(self, reference: np.ndarray, prediction: np.ndarray) -> List[Click]:
        """One click per region where the region masks (TC, WT, ET, ...) disagree."""
        clicks = (self.click(reference[k], prediction[k], r) for k, r in enumerate(CLICK_REGIONS))
        return [c for c in clicks if c is not None]


def regions_of(clicks: Sequence[Click]) -> List[List[Click]]:
    """The clicks of each region, in the order of :data:`~fedbrats.runtime.constants.CLICK_REGIONS`."""
    return [[c for c in clicks if c.region == r] for r in CLICK_REGIONS]

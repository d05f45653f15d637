"""BraTS label maps and the model's nested regions (TC, WT, ET), both ways."""

import numpy as np
import torch
from monai.transforms import ConvertToMultiChannelBasedOnBratsClasses

from fedbrats.runtime.constants import REGIONS

REGION_LABELS = (("WT", 2), ("TC", 1), ("ET", 4))
"""Label written for each region, in the order of writing: a later region overwrites an earlier one."""


def brats_labels(masks) -> np.ndarray:
    """BraTS labels {0, 1, 2, 4} of region masks (TC, WT, ET, ...), channel first.

    WT is written 2, then TC 1, then ET 4, each over the previous one (as nnU-Net and MONAI's BraTS bundle do):
    a voxel predicted ET is labelled 4 even where TC or WT was not predicted, so ET lies inside TC inside WT.
    """
    masks = torch.as_tensor(masks).bool().cpu().numpy()
    labels = np.zeros(masks.shape[1:], dtype=np.uint8)
    for region, value in REGION_LABELS:
        labels[masks[REGIONS.index(region)]] = value
    return labels


def label_regions(labels) -> np.ndarray:
    """Region masks (TC, WT, ET) of a BraTS label map, as boolean channels (MONAI's conversion)."""
    regions = ConvertToMultiChannelBasedOnBratsClasses()(torch.as_tensor(np.asarray(labels)))
    return torch.as_tensor(regions).bool().cpu().numpy()

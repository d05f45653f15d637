"""Segment one case: the site's preprocessing, sliding-window inference, back to the case's own grid, BraTS labels.

The model sees the case reoriented to RAS, resampled to ``pixdim`` and normalised, as in training. Its region
probabilities are mapped back to the grid of the case's T1c (the 4D image of a case in the MSD layout) with MONAI's
``Invertd`` (the exact inverse of the orientation and resampling, linear interpolation), thresholded at 0.5 and
turned into labels {0, 1, 2, 4}.
"""

from typing import Dict, Sequence

import nibabel as nib
import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import Invertd

from fedbrats.evaluation.regions import brats_labels
from fedbrats.runtime.constants import BRATS_LABELS, REGIONS
from fedbrats.runtime.data.loaders import data_errors
from fedbrats.runtime.data.transforms import eval_transforms
from fedbrats.runtime.engine import region_masks
from fedbrats.runtime.model import Logits
from fedbrats.runtime.settings import TrainSettings


class CaseSegmenter:
    """Labels {0, 1, 2, 4} of a case ``{"case", "image": [t1ce, t1, t2, flair]}`` on the grid of its T1c (or of an
    MSD case ``{"case", "format": "msd", "image": 4D image}`` on its image's spatial grid)."""

    def __init__(self, settings: TrainSettings, logits: Logits):
        self.settings = settings
        self.logits = logits
        self.preprocess = eval_transforms(settings, with_label=False)
        self.invert = Invertd(keys="pred", transform=self.preprocess, orig_keys="image", nearest_interp=False)

    def probabilities(self, case: Dict[str, object]) -> torch.Tensor:
        """Region probabilities (TC, WT, ET) on the case's original grid."""
        with data_errors():
            data = self.preprocess(dict(case))
        image = data["image"]
        logits = torch.as_tensor(self.logits(image.as_tensor()[None]))
        probs = logits.sigmoid()
        et = REGIONS.index("ET")
        if not region_masks(logits, self.settings)[0, et].any():  # no ET, or one below et_min_volume
            probs[0, et] = 0
        data["pred"] = MetaTensor(probs[0], meta=dict(image.meta), applied_operations=list(image.applied_operations))
        return torch.as_tensor(self.invert(data)["pred"])

    def __call__(self, case: Dict[str, object]) -> np.ndarray:
        return brats_labels(self.probabilities(case) > 0.5)


def write_labels(labels: np.ndarray, reference: str, path: str, values: Sequence[int] = BRATS_LABELS) -> None:
    """Save ``labels`` (of ``values``) as uint8 NIfTI with the header and affine of ``reference``: the case's T1c, or
    its 4D image in the MSD layout, whose spatial grid the labels are on."""
    ref = nib.load(reference)
    if labels.shape != ref.shape[:3]:
        raise ValueError(f"labels of shape {labels.shape} do not fit the grid {ref.shape} of {reference}")
    header = ref.header.copy()
    header.set_data_dtype(np.uint8)
    header.set_slope_inter(1, 0)
    header["cal_min"], header["cal_max"] = 0, max(values)
    image = nib.Nifti1Image(labels.astype(np.uint8), ref.affine, header)
    image.set_qform(ref.get_qform(), code=int(ref.header["qform_code"]))
    image.set_sform(ref.get_sform(), code=int(ref.header["sform_code"]))
    nib.save(image, path)

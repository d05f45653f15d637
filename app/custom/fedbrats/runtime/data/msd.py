"""The Medical Segmentation Decathlon's Task01_BrainTumour layout: one 4D image per case, labels 0 to 3.

A case's image ``imagesTr/BRATS_001.nii.gz`` holds FLAIR, T1w, T1gd and T2w as the 4 channels of one NIfTI; its
label ``labelsTr/BRATS_001.nii.gz`` says 1 oedema, 2 non-enhancing tumour, 3 enhancing tumour. Its datalist entry is
``{"image": "imagesTr/BRATS_001.nii.gz", "label": "labelsTr/BRATS_001.nii.gz", "format": "msd"}``. The model sees
such a case as it sees a BraTS case: channels in the order of ``MODALITIES``, labels mapped to BraTS's.
"""

import os
from typing import Mapping, Tuple

import numpy as np
import torch

from fedbrats.runtime.constants import (
    BRATS_FORMAT,
    BRATS_LABELS,
    MODALITIES,
    MSD_CHANNELS,
    MSD_FORMAT,
    MSD_LABELS,
    MSD_TO_BRATS_LABELS,
)

IMAGES_DIR, LABELS_DIR, DATASET_JSON = "imagesTr", "labelsTr", "dataset.json"
CHANNEL_ORDER = tuple(MSD_CHANNELS.index(m) for m in MODALITIES)
"""Index of each of the model's channels (T1c, T1, T2, FLAIR) among an MSD image's channels."""
BRATS_TO_MSD_LABELS = {b: m for m, b in MSD_TO_BRATS_LABELS.items()}


def entry_format(entry: Mapping[str, object]) -> str:
    """The layout of a datalist entry or resolved case: ``msd`` when it says so, BraTS otherwise."""
    return str(entry.get("format", BRATS_FORMAT)) if isinstance(entry, Mapping) else BRATS_FORMAT


def is_msd(entry: Mapping[str, object]) -> bool:
    return entry_format(entry) == MSD_FORMAT


def label_values(data_format: str) -> Tuple[int, ...]:
    """The label values of a layout's label maps."""
    return MSD_LABELS if data_format == MSD_FORMAT else BRATS_LABELS


def msd_files(case_id: str) -> dict:
    """Datalist entry of one case in the MSD Task01 layout, relative to the data root (the dataset's folder)."""
    return {
        "image": f"{IMAGES_DIR}/{case_id}.nii.gz",
        "label": f"{LABELS_DIR}/{case_id}.nii.gz",
        "format": MSD_FORMAT,
    }


def file_case_name(path: str) -> str:
    """Case id of an MSD file: its name without ``.nii.gz`` or ``.nii`` (``imagesTr/BRATS_001.nii.gz``: BRATS_001)."""
    name = os.path.basename(path)
    for ext in (".nii.gz", ".nii"):
        if name.endswith(ext):
            return name[: -len(ext)]
    return name


def relabel(volume, mapping: Mapping[int, int]):
    """A copy of a label map (numpy array or tensor, a MetaTensor keeps its metadata) with values mapped."""
    out = volume.clone() if isinstance(volume, torch.Tensor) else np.array(volume, copy=True)
    for source, target in mapping.items():
        out[volume == source] = target
    return out


def to_brats_labels(volume):
    """BraTS labels {0, 1, 2, 4} of an MSD label map {0, 1, 2, 3}."""
    return relabel(volume, MSD_TO_BRATS_LABELS)


def to_msd_labels(volume):
    """MSD labels {0, 1, 2, 3} of a BraTS label map {0, 1, 2, 4}."""
    return relabel(volume, BRATS_TO_MSD_LABELS)

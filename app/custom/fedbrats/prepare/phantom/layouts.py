"""A generated case written in the BraTS 2018 layout (a file per modality) or the MSD Task01 layout (one 4D image)."""

import os
from typing import Dict, List, Mapping

import nibabel as nib
import numpy as np

from fedbrats.runtime.constants import LABEL_SUFFIX, MODALITIES, MSD_CHANNEL_NAMES, MSD_CHANNELS
from fedbrats.runtime.data.datalist import case_files
from fedbrats.runtime.data.msd import msd_files, to_msd_labels

MSD_LABEL_NAMES = {"0": "background", "1": "edema", "2": "non-enhancing tumor", "3": "enhancing tumour"}
"""The ``labels`` of MSD Task01's dataset.json."""


def save_nifti(volume: np.ndarray, affine: np.ndarray, path: str) -> None:
    """Write a NIfTI in mm, atomically (a partly written file never has the final name)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    img = nib.Nifti1Image(volume, affine)
    img.header.set_xyzt_units("mm", "sec")
    nib.save(img, f"{path}.part.nii.gz")
    os.replace(f"{path}.part.nii.gz", path)


def write_brats_case(root: str, case_id: str, grade: str, volumes: Mapping[str, np.ndarray], affine) -> dict:
    """``<grade>/<case>/<case>_<modality>.nii.gz`` and ``_seg.nii.gz``; returns the case's datalist entry."""
    entry = case_files(case_id, grade)
    for name, rel in zip(MODALITIES + (LABEL_SUFFIX,), entry["image"] + [entry["label"]]):
        save_nifti(volumes[name], affine, os.path.join(root, rel))
    return entry


def write_msd_case(root: str, case_id: str, volumes: Mapping[str, np.ndarray], affine) -> dict:
    """``imagesTr/<case>.nii.gz`` (4D: FLAIR, T1w, T1gd, T2w) and ``labelsTr/<case>.nii.gz`` (labels 0 to 3);
    returns the case's datalist entry."""
    entry = msd_files(case_id)
    image = np.stack([volumes[m] for m in MSD_CHANNELS], axis=-1)
    save_nifti(image, affine, os.path.join(root, entry["image"]))
    save_nifti(to_msd_labels(volumes[LABEL_SUFFIX]).astype(np.uint8), affine, os.path.join(root, entry["label"]))
    return entry


def msd_dataset(entries: List[Dict[str, str]], description: str) -> dict:
    """A dataset.json as MSD Task01 has it, listing ``entries`` (relative to its folder, as ``./imagesTr/...``)."""
    return {
        "name": "BrainTumour",
        "description": description,
        "tensorImageSize": "4D",
        "modality": {str(k): name for k, name in enumerate(MSD_CHANNEL_NAMES)},
        "labels": dict(MSD_LABEL_NAMES),
        "numTraining": len(entries),
        "numTest": 0,
        "training": [{"image": f"./{e['image']}", "label": f"./{e['label']}"} for e in entries],
        "test": [],
    }

"""MONAI preprocessing of BraTS cases, as in the reference SegResNetVAE training."""

from typing import Hashable, Mapping

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import (
    Compose,
    ConvertToMultiChannelBasedOnBratsClassesd,
    EnsureTyped,
    LoadImage,
    MapTransform,
    NormalizeIntensityd,
    Orientationd,
    RandCropByPosNegLabeld,
    RandFlipd,
    RandScaleIntensityd,
    RandShiftIntensityd,
    RandSpatialCropd,
    Spacingd,
    SpatialPadd,
)

from .constants import BRATS_LABELS, MODALITIES
from .errors import BratsDataError
from .settings import TrainSettings


class LoadBratsCased(MapTransform):
    """Load the 4 modalities and the label of a case, checking files, shapes and label values.

    Expects ``{"case", "image": [t1ce, t1, t2, flair], "label"}``; yields channel-first MetaTensors.
    """

    def __init__(self, with_label: bool = True):
        super().__init__(keys=["image", "label"] if with_label else ["image"])
        self.with_label = with_label
        self.loader = LoadImage(image_only=True, ensure_channel_first=True)

    def _load(self, case: str, path: str) -> MetaTensor:
        try:
            img = self.loader(path)
        except Exception as e:
            raise BratsDataError(f"cannot read NIfTI ({type(e).__name__}: {e})", case=case, path=path) from None
        if img.ndim != 4 or img.shape[0] != 1:
            raise BratsDataError(f"expected a 3D volume, got shape {tuple(img.shape[1:])}", case=case, path=path)
        return img

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        case = str(d.get("case", "?"))
        channels = [self._load(case, p) for p in d["image"]]
        shape = channels[0].shape
        for name, path, img in zip(MODALITIES, d["image"], channels):
            if img.shape != shape:
                raise BratsDataError(
                    f"{name} has shape {tuple(img.shape[1:])}, {MODALITIES[0]} has {tuple(shape[1:])}",
                    case=case,
                    path=path,
                )
        image = torch.cat([c.float() for c in channels], dim=0)
        d["image"] = MetaTensor(image, meta=dict(channels[0].meta))
        if self.with_label:
            label = self._load(case, d["label"])
            if label.shape != shape:
                raise BratsDataError(
                    f"label has shape {tuple(label.shape[1:])}, images have {tuple(shape[1:])}",
                    case=case,
                    path=d["label"],
                )
            values = set(np.unique(label.numpy()).tolist())
            bad = sorted(values - set(BRATS_LABELS))
            if bad:
                shown = ", ".join(f"{v:g}" for v in bad[:10])
                raise BratsDataError(f"label values [{shown}] outside {list(BRATS_LABELS)}", case=case, path=d["label"])
            d["label"] = label
        return d


def deterministic_transforms(settings: TrainSettings, with_label: bool = True, pad_to_crop: bool = True) -> list:
    """Decode, convert labels, orient, resample and normalise: the part that caching keeps."""
    keys = ["image", "label"] if with_label else ["image"]
    modes = ("bilinear", "nearest") if with_label else ("bilinear",)
    chain = [LoadBratsCased(with_label)]
    if with_label:
        chain += [
            ConvertToMultiChannelBasedOnBratsClassesd(keys="label"),
            EnsureTyped(keys="label", dtype=torch.float32),
        ]
    chain += [
        Orientationd(keys=keys, axcodes="RAS", labels=None),
        Spacingd(keys=keys, pixdim=(settings.pixdim,) * 3, mode=modes),
        NormalizeIntensityd(keys="image", nonzero=True, channel_wise=True),
    ]
    if pad_to_crop:
        chain.append(SpatialPadd(keys=keys, spatial_size=settings.crop))
    return chain


def train_transforms(settings: TrainSettings) -> Compose:
    keys = ["image", "label"]
    if settings.crop_sampling == "tumour":
        crop = RandCropByPosNegLabeld(
            keys=keys, label_key="label", spatial_size=settings.crop, pos=1, neg=1, num_samples=1
        )
    else:
        crop = RandSpatialCropd(keys=keys, roi_size=settings.crop, random_size=False)
    return Compose(
        deterministic_transforms(settings)
        + [
            crop,
            RandFlipd(keys=keys, prob=0.5, spatial_axis=0),
            RandFlipd(keys=keys, prob=0.5, spatial_axis=1),
            RandFlipd(keys=keys, prob=0.5, spatial_axis=2),
            RandScaleIntensityd(keys="image", factors=0.1, prob=1.0),
            RandShiftIntensityd(keys="image", offsets=0.1, prob=1.0),
        ]
    )


def eval_transforms(settings: TrainSettings, with_label: bool = True) -> Compose:
    """Whole-volume preprocessing for sliding-window validation and inference."""
    return Compose(deterministic_transforms(settings, with_label, pad_to_crop=False))

"""MONAI preprocessing of BraTS cases, as in the reference SegResNetVAE training."""

from typing import Hashable, List, Mapping, Optional, Tuple

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import (
    Compose,
    ConvertToMultiChannelBasedOnBratsClassesd,
    EnsureTyped,
    LoadImage,
    MapTransform,
    Orientationd,
    RandCropByPosNegLabeld,
    RandFlipd,
    RandScaleIntensityd,
    RandShiftIntensityd,
    RandSpatialCropd,
    Spacingd,
    SpatialPadd,
)

from fedbrats.runtime.constants import MODALITIES, MSD_CHANNEL_NAMES, MSD_CHANNELS
from fedbrats.runtime.data import guards
from fedbrats.runtime.data.compact import RestoreCased
from fedbrats.runtime.data.msd import CHANNEL_ORDER, entry_format, is_msd, label_values, to_brats_labels
from fedbrats.runtime.data.nifti import copy_voxels, read_nifti
from fedbrats.runtime.data.zscore import (
    DrawnScaleIntensityd,
    DrawnShiftIntensityd,
    NonzeroNormalized,
    NonzeroStatsd,
    NormalizeByStatsd,
)
from fedbrats.runtime.errors import BratsDataError
from fedbrats.runtime.settings import TrainSettings

MSD_IMAGE = f"a 4D image of {len(MSD_CHANNELS)} channels ({', '.join(MSD_CHANNEL_NAMES)})"
"""What the image file of a case in the MSD Task01 layout must be."""


class LoadBratsCased(MapTransform):
    """Load the image and the label of a case, checking files, volumes, grids and label values.

    Expects ``{"case", "image": [t1ce, t1, t2, flair], "label"}`` (BraTS layout) or ``{"case", "format": "msd",
    "image": 4D image, "label"}`` (MSD Task01 layout: channels FLAIR, T1w, T1gd, T2w, labels 0 to 3). Yields
    channel-first MetaTensors: the image's channels in the order of ``MODALITIES`` and the label in BraTS values,
    alike for a case in either layout. A case is refused with a :class:`BratsDataError` naming the case and the file
    when a file cannot be read or is not a 3D volume (a 4D image of 4 channels in the MSD layout), a modality has
    non-finite voxels, is constant (a missing scan) or has an implausible voxel size (:mod:`~.guards`), the
    modalities or the label are not on the grid of the first modality (shape, or affine beyond
    ``GRID_TOLERANCE_MM``), or the label has values outside its layout's.
    """

    def __init__(self, with_label: bool = True):
        super().__init__(keys=["image", "label"] if with_label else ["image"])
        self.with_label = with_label
        self.loader = LoadImage(image_only=True, ensure_channel_first=True, dtype=None)  # as stored: one conversion

    def _load(self, case: str, path: str, problems: List[BratsDataError], channels: int = 1) -> Optional[MetaTensor]:
        try:
            img = self.loader(path)
        except Exception as e:
            problems.append(BratsDataError(f"cannot read NIfTI ({type(e).__name__}: {e})", case=case, path=path))
            return None
        if img.ndim != 4 or img.shape[0] != channels:
            stored = tuple(img.shape[1:]) + ((img.shape[0],) if img.ndim == 4 and img.shape[0] > 1 else ())
            wanted = "a 3D volume" if channels == 1 else MSD_IMAGE
            problems.append(BratsDataError(f"expected {wanted}, got shape {stored}", case=case, path=path))
            return None
        return img

    def _brats_image(self, case: str, paths: List[str], problems: List[BratsDataError], problem) -> tuple:
        """(image or None, name and volume of the grid reference) of the 4 modality files of a BraTS case."""
        channels = []
        for name, path in zip(MODALITIES, paths):
            img = self._load(case, path, problems) if path else None
            if img is not None:
                problem(guards.geometry_problem(name, img.affine), path)
                problem(guards.intensity_problem(name, img), path)
            channels.append(img)
        loaded = [(n, p, img) for n, p, img in zip(MODALITIES, paths, channels) if img is not None]
        ref_name, _, ref = loaded[0] if loaded else (None, None, None)
        for name, path, img in loaded[1:]:
            if img.shape != ref.shape:
                problem(f"{name} has shape {tuple(img.shape[1:])}, {ref_name} has {tuple(ref.shape[1:])}", path)
            else:
                problem(guards.grid_problem(name, img.affine, ref_name, ref.affine, ref.shape[1:]), path)
        if problems or len(loaded) < len(MODALITIES):
            return None, ref_name, ref
        return self._stacked(channels), ref_name, ref

    def _stacked(self, channels: List[MetaTensor]) -> MetaTensor:
        """The modalities as one float32 image, channel first."""
        return MetaTensor(torch.cat([c.float() for c in channels], dim=0), meta=dict(channels[0].meta))

    def _msd_image(self, case: str, path: Optional[str], problems: List[BratsDataError], problem) -> tuple:
        """(image or None, name and volume of the grid reference) of the 4D image of an MSD case."""
        img = self._load(case, path, problems, channels=len(MSD_CHANNELS)) if path else None
        if img is None:
            return None, None, None
        problem(guards.geometry_problem("image", img.affine), path)
        for index, name in enumerate(MSD_CHANNEL_NAMES):
            problem(guards.intensity_problem(f"channel {index} ({name})", img.as_tensor()[index]), path)
        if problems:
            return None, "image", img
        return MetaTensor(img.as_tensor()[list(CHANNEL_ORDER)].float(), meta=dict(img.meta)), "image", img

    def inspect(self, data: Mapping[Hashable, object]) -> Tuple[dict, List[BratsDataError]]:
        """Load a case and collect every problem of it (the first is what ``__call__`` raises).

        A path given as None is skipped (``fedbrats check-data`` passes None for a file it could not resolve).
        Returns the loaded case, valid only when the list of problems is empty.
        """
        d = dict(data)
        case = str(d.get("case", "?"))
        problems: List[BratsDataError] = []

        def problem(message: Optional[str], path: str) -> None:
            if message:
                problems.append(BratsDataError(message, case=case, path=path))

        msd = is_msd(d)
        read_image = self._msd_image if msd else self._brats_image
        image, ref_name, ref = read_image(case, d["image"], problems, problem)
        label = None
        if self.with_label and d.get("label"):
            path = d["label"]
            label = self._load(case, path, problems)
            if label is not None and ref is not None:
                if label.shape[1:] != ref.shape[1:]:
                    problem(f"label has shape {tuple(label.shape[1:])}, images have {tuple(ref.shape[1:])}", path)
                else:
                    problem(guards.grid_problem("label", label.affine, ref_name, ref.affine, ref.shape[1:]), path)
            if label is not None:
                problem(guards.label_problem(label.numpy(), label_values(entry_format(d))), path)
        if problems or image is None or (self.with_label and label is None):
            return d, problems
        d["image"] = image
        if self.with_label:
            d["label"] = to_brats_labels(label) if msd else label
        return d, problems

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d, problems = self.inspect(data)
        if problems:
            raise problems[0]
        if not isinstance(d["image"], MetaTensor) or (self.with_label and not isinstance(d.get("label"), MetaTensor)):
            raise BratsDataError("a modality or the label has no file", case=str(d.get("case", "?")))
        return d


GRID_ATOL = 1e-4
"""How far (mm) the axes of an affine may be from RAS at the settings' voxel size for a volume to count as on it:
float32 noise of a NIfTI header, far below a shift of a voxel over a 512-voxel field."""
STORED_INTEGERS = (torch.uint8, torch.int8, torch.int16)
"""Stored types of modalities that :class:`ReadBratsCased` stacks as int16, every value kept."""


class ReadBratsCased(LoadBratsCased):
    """:class:`LoadBratsCased` with each file decoded once by nibabel and its modalities stacked in the copy that
    takes them out of the NIfTI layout: int16 when every modality is stored as 8- or 16-bit integers (the values as
    stored, converted to float32 only when a crop of them is normalised), float32 otherwise; the label in int16. Used
    for training crops."""

    def _load(self, case: str, path: str, problems: List[BratsDataError], channels: int = 1) -> Optional[MetaTensor]:
        img = read_nifti(path)
        if img is None or img.shape[0] != channels:
            return super()._load(case, path, problems, channels)
        return img

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = super().__call__(data)
        if self.with_label:  # int16: MONAI's crop around tumour takes every voxel of a uint8 label for background
            label = d["label"]
            d["label"] = MetaTensor(
                copy_voxels(torch.empty(label.shape, dtype=torch.int16)[0], label.as_tensor()[0])[None],
                meta=dict(label.meta),
            )
        return d

    def _stacked(self, channels: List[MetaTensor]) -> MetaTensor:
        stored = all(channel.dtype in STORED_INTEGERS for channel in channels)
        image = torch.empty((len(channels), *channels[0].shape[1:]), dtype=torch.int16 if stored else torch.float32)
        for target, channel in zip(image, channels):
            copy_voxels(target, channel.as_tensor()[0])
        return MetaTensor(image, meta=dict(channels[0].meta))


def grid_transforms(settings: TrainSettings, keys: List[str]) -> list:
    """Orient to RAS and resample to ``settings.pixdim`` (each a no-op on a volume already so)."""
    modes = ("bilinear", "nearest")[: len(keys)]
    return [
        Orientationd(keys=keys, axcodes="RAS", labels=None),
        Spacingd(keys=keys, pixdim=(settings.pixdim,) * 3, mode=modes),
    ]


def on_grid(affine: torch.Tensor, pixdim: float) -> bool:
    """Whether a volume of ``affine`` is already RAS at ``pixdim`` mm: orienting and resampling it change nothing."""
    axes = np.asarray(torch.as_tensor(affine), dtype=np.float64)[:3, :3]
    return bool(np.allclose(axes, np.diag([pixdim] * 3), rtol=0, atol=GRID_ATOL))


class ToGridd(MapTransform):
    """:func:`grid_transforms` of ``keys`` on a float32 image, skipped when the image is already :func:`on_grid` (its
    voxels then stay in their stored type)."""

    def __init__(self, settings: TrainSettings, keys: List[str]):
        super().__init__(keys=keys)
        self.pixdim = settings.pixdim
        self.transforms = Compose(grid_transforms(settings, keys))

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        if on_grid(data["image"].affine, self.pixdim):
            return dict(data)
        return self.transforms({**data, "image": data["image"].float()})


def label_regions() -> list:
    """BraTS labels to the TC, WT and ET regions, float32."""
    return [
        ConvertToMultiChannelBasedOnBratsClassesd(keys="label"),
        EnsureTyped(keys="label", dtype=torch.float32),
    ]


class BratsRegionsd(MapTransform):
    """:func:`label_regions` of ``label`` written straight into float32 channels, one comparison per label value:
    TC (labels 1 and 4), WT (1, 2 and 4), ET (4), the tensor MONAI's conversion gives, in about half its time."""

    def __init__(self, key: str = "label"):
        super().__init__(keys=[key])

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        label = d[self.keys[0]]
        values = torch.as_tensor(label).as_subclass(torch.Tensor)
        values = values[0] if values.ndim == 4 else values
        regions = torch.empty((3, *values.shape), dtype=torch.float32)
        tc, wt, et = regions
        torch.eq(values, 4, out=et)
        torch.eq(values, 1, out=tc).add_(et)
        torch.eq(values, 2, out=wt).add_(tc)
        if isinstance(label, MetaTensor):
            regions = MetaTensor(regions, meta=label.meta, applied_operations=label.applied_operations)
        d[self.keys[0]] = regions
        return d


def deterministic_transforms(settings: TrainSettings, with_label: bool = True, pad_to_crop: bool = True) -> list:
    """Decode, convert labels, orient, resample and normalise: the part that caching keeps."""
    keys = ["image", "label"] if with_label else ["image"]
    chain = [LoadBratsCased(with_label)] + (label_regions() if with_label else [])
    chain += grid_transforms(settings, keys) + [NonzeroNormalized(keys="image")]
    if pad_to_crop:
        chain.append(SpatialPadd(keys=keys, spatial_size=settings.crop))
    return chain


def random_transforms(settings: TrainSettings) -> list:
    """The training crop (anywhere or centred on tumour half of the time), flips and intensity augmentation."""
    keys = ["image", "label"]
    if settings.crop_sampling == "tumour":
        crop = RandCropByPosNegLabeld(
            keys=keys, label_key="label", spatial_size=settings.crop, pos=1, neg=1, num_samples=1
        )
    else:
        crop = RandSpatialCropd(keys=keys, roi_size=settings.crop, random_size=False)
    return [
        crop,
        RandFlipd(keys=keys, prob=0.5, spatial_axis=0),
        RandFlipd(keys=keys, prob=0.5, spatial_axis=1),
        RandFlipd(keys=keys, prob=0.5, spatial_axis=2),
        RandScaleIntensityd(keys="image", factors=0.1, prob=1.0),
        RandShiftIntensityd(keys="image", offsets=0.1, prob=1.0),
    ]


def train_transforms(settings: TrainSettings) -> Compose:
    """A training crop of a case from its files, with nothing cached: the whole volume is decoded, oriented,
    resampled and measured, then only the crop is flipped in its stored type, turned into regions, and normalised and
    intensity-augmented in one pass.

    The crop holds the voxels of :func:`deterministic_transforms` followed by :func:`random_transforms`, from the
    same random draws (the random transforms draw as MONAI's do, in the same order), but for float32 rounding of the
    normalisation's mean and standard deviation."""
    keys = ["image", "label"]
    crop, *flips, scale, shift = random_transforms(settings)
    chain = [ReadBratsCased(), ToGridd(settings, keys), NonzeroStatsd()]
    chain += [SpatialPadd(keys=keys, spatial_size=settings.crop), crop, *flips, BratsRegionsd()]
    chain += [DrawnScaleIntensityd(keys="image", factors=scale.scaler.factors, prob=scale.prob)]
    chain += [DrawnShiftIntensityd(keys="image", offsets=shift.shifter.offsets, prob=shift.prob), NormalizeByStatsd()]
    return Compose(chain)


def eval_transforms(settings: TrainSettings, with_label: bool = True) -> Compose:
    """Whole-volume preprocessing for sliding-window validation and inference."""
    return Compose(deterministic_transforms(settings, with_label, pad_to_crop=False))


def after_cache_transforms(settings: TrainSettings, train: bool) -> Compose:
    """What follows the cache: a compact case (:class:`~.compact.CompactCased` of :func:`eval_transforms`)
    restored to float32 on its grid, for training padded to the crop size and augmented; a case that was not cached
    passes as it is to the padding. The tensors are those of :func:`train_transforms` (``train``) or
    :func:`eval_transforms`, but for float16 rounding of the image of a cached case."""
    chain = [RestoreCased()]
    if train:
        chain += [SpatialPadd(keys=["image", "label"], spatial_size=settings.crop)] + random_transforms(settings)
    return Compose(chain)

"""Training settings: the one place where defaults of the model, data pipeline and optimiser live."""

import argparse
import json
from dataclasses import asdict, dataclass, fields
from typing import Any, Dict, Mapping, Tuple, Union

from fedbrats.runtime.constants import INTERACTIVE_CHANNELS, MODALITIES

CROP_SAMPLING = ("random", "tumour")
LOSSES = ("dice", "dice_bce")
LR_SCHEDULES = ("constant", "cosine")
AUTO = "auto"
IGNORED_SETTINGS = frozenset({"extra", "fedprox_mu"})
"""Names that model files and job configs written by earlier versions of the package may carry: read, then ignored
(FedProx is a job's aggregation method: ``--algorithm fedprox``)."""


def cache_rate_value(value: Union[str, float]) -> Union[str, float]:
    """``auto`` or a share of cases from 0 to 1 (a number or its text); refuses anything else."""
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return AUTO
    try:
        rate = float(value)
    except (TypeError, ValueError):
        rate = -1.0
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"cache_rate must be {AUTO!r} or a number from 0 to 1, got {value!r}")
    return rate


@dataclass
class TrainSettings:
    """Everything a site needs to train and evaluate; jobs and CLIs override fields by name."""

    crop: Tuple[int, int, int] = (224, 224, 144)
    """Random training crop; also the sliding-window size and the VAE's ``input_image_size``."""
    crop_sampling: str = "random"
    """``random`` crops anywhere (the reference); ``tumour`` centres half of the crops on tumour voxels."""
    pixdim: float = 1.0
    """Isotropic voxel size in mm the images are resampled to."""
    init_filters: int = 16
    blocks_down: Tuple[int, ...] = (1, 2, 2, 4)
    blocks_up: Tuple[int, ...] = (1, 1, 1)
    dropout: float = 0.2
    learning_rate: float = 1e-4
    lr_schedule: str = "constant"
    """``constant`` (the reference) or ``cosine``: the learning rate decays from ``learning_rate`` towards 0 over
    the run, set once per FL round (or per validation interval without FLARE), so every arm follows one schedule."""
    weight_decay: float = 1e-5
    vae_weight: float = 0.1
    loss: str = "dice"
    """``dice`` (the reference) or ``dice_bce``: smoothed Dice plus binary cross-entropy per region, as nnU-Net
    trains BraTS regions; crops without enhancing tumour then teach the model not to predict one."""
    batch_size: int = 1
    local_epochs: int = 1
    local_steps: int = 0
    """Optimiser steps per FL round, across passes over the site's cases; 0 means ``local_epochs`` passes."""
    max_steps_per_epoch: int = 0
    """Cap on training steps per epoch; 0 means a full pass over the training cases."""
    cache_rate: Union[str, float] = AUTO
    """Share of a split's cases whose preprocessing a site keeps in memory (compact: :mod:`~.data.compact`), or
    ``auto``: as many as fit in half of the memory available when the cache fills (:mod:`~.data.cache`)."""
    num_workers: int = 0
    """Background processes that prepare training crops and validation cases while the model trains; 0: in the
    training process. A GPU needs them: a full-size case decoded without the cache takes a CPU core seconds."""
    num_threads: int = 0
    """torch CPU threads; 0 picks one per available core."""
    amp: bool = True
    """Mixed precision, used on CUDA only."""
    et_min_volume: float = 0.0
    """Predicted enhancing tumour below this volume (mm^3) is dropped (it stays tumour core), as the top BraTS
    methods do (nnU-Net, Isensee et al. 2018): most LGG have no ET, where one false voxel scores Dice 0. 0: off."""
    sw_roi: Tuple[int, ...] = ()
    """Sliding-window size for validation and inference; empty means the training crop. The network is fully
    convolutional in eval mode, so a window covering the whole volume (as MONAI's BraTS tutorial does) is valid."""
    sw_batch_size: int = 1
    sw_overlap: float = 0.5
    seed: int = 0
    interactive: bool = False
    """The Deepgrow-style model (:mod:`~.interactive`): the modalities, a starting segmentation and click maps in,
    trained and validated with simulated clicks."""
    max_clicks: int = 4
    """Interactive training: each step simulates 0 to this many rounds of clicks (one per region) before it learns."""
    eval_clicks: int = 5
    """Interactive validation: clicks per region before a case is scored; a site's ``mean_dice`` (the selection of
    the best global model) is the Dice after these clicks, and the scores without clicks come beside it."""

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] = None) -> "TrainSettings":
        """Build settings from a mapping, refusing unknown names so that typos in a job fail early."""
        values = {k: v for k, v in dict(values or {}).items() if k not in IGNORED_SETTINGS}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown training settings {unknown}; known: {sorted(known)}")
        for name in ("crop", "blocks_down", "blocks_up", "sw_roi"):
            if name in values:
                values[name] = tuple(int(v) for v in values[name])
        if "cache_rate" in values:
            values["cache_rate"] = cache_rate_value(values["cache_rate"])
        settings = cls(**values)
        if settings.crop_sampling not in CROP_SAMPLING:
            raise ValueError(f"crop_sampling must be one of {CROP_SAMPLING}, got {settings.crop_sampling!r}")
        if settings.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {settings.loss!r}")
        if settings.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {settings.lr_schedule!r}")
        if settings.max_clicks < 0 or settings.eval_clicks < 0:
            raise ValueError("max_clicks and eval_clicks must not be negative")
        if settings.local_epochs < 1 or settings.batch_size < 1 or settings.local_steps < 0:
            raise ValueError("local_epochs and batch_size must be at least 1, local_steps at least 0")
        if len(settings.crop) != 3 or min(settings.crop) < 16:
            raise ValueError(f"crop must be 3 sizes of at least 16 voxels, got {settings.crop}")
        if settings.sw_roi and (len(settings.sw_roi) != 3 or min(settings.sw_roi) < 16):
            raise ValueError(f"sw_roi must be empty or 3 sizes of at least 16 voxels, got {settings.sw_roi}")
        if not 0 <= settings.sw_overlap < 1 or settings.sw_batch_size < 1:
            raise ValueError(
                f"sw_overlap must be at least 0 and below 1 and sw_batch_size at least 1, got {settings.sw_overlap} "
                f"and {settings.sw_batch_size}"
            )
        return settings

    def replace(self, **changes) -> "TrainSettings":
        values = self.to_dict()
        values.update({k: v for k, v in changes.items() if v is not None})
        return TrainSettings.from_dict(values)

    def to_dict(self) -> Dict[str, Any]:
        values = asdict(self)
        for name in ("crop", "blocks_down", "blocks_up", "sw_roi"):
            values[name] = list(values[name])
        return values

    @property
    def window(self) -> Tuple[int, ...]:
        """The sliding-window size used for validation and inference."""
        return tuple(self.sw_roi) or tuple(self.crop)

    def model_kwargs(self) -> Dict[str, Any]:
        """Arguments of :class:`fedbrats.runtime.model.BratsSegResNetVAE`."""
        return {
            "crop": list(self.crop),
            "init_filters": self.init_filters,
            "blocks_down": list(self.blocks_down),
            "blocks_up": list(self.blocks_up),
            "dropout": self.dropout,
            "seed": self.seed,
            "in_channels": INTERACTIVE_CHANNELS if self.interactive else len(MODALITIES),
        }


SETTINGS_FLAGS = (
    "crop",
    "crop_sampling",
    "pixdim",
    "init_filters",
    "learning_rate",
    "lr_schedule",
    "loss",
    "batch_size",
    "cache_rate",
    "num_workers",
    "max_steps_per_epoch",
    "num_threads",
    "seed",
    "sw_roi",
    "sw_overlap",
    "sw_batch_size",
)


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags that override :class:`TrainSettings`, shared by every command that trains or builds a job."""
    parser.add_argument("--settings", help="JSON file of training settings")
    parser.add_argument("--crop", type=int, nargs=3, help="training crop, e.g. 224 224 144")
    parser.add_argument("--crop-sampling", choices=CROP_SAMPLING)
    parser.add_argument("--pixdim", type=float, help="voxel size in mm to resample to")
    parser.add_argument("--init-filters", type=int)
    parser.add_argument("--lr", type=float, dest="learning_rate")
    parser.add_argument("--lr-schedule", choices=LR_SCHEDULES)
    parser.add_argument("--loss", choices=LOSSES)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument(
        "--cache-rate", type=cache_rate_value, help="share of cases kept in memory, or auto (default: as many as fit)"
    )
    parser.add_argument("--num-workers", type=int, help="background loader processes (0: in the training process)")
    parser.add_argument("--max-steps", type=int, dest="max_steps_per_epoch", help="cap on training steps per epoch")
    parser.add_argument("--num-threads", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--sw-roi", type=int, nargs=3, help="validation and inference window (default: the crop)")
    parser.add_argument("--sw-overlap", type=float, help="overlap of neighbouring windows, 0 to below 1")
    parser.add_argument("--sw-batch-size", type=int, help="windows per forward pass")


def settings_overrides(args: argparse.Namespace) -> Dict[str, Any]:
    """The settings named on the command line: the ``--settings`` file, then the single flags."""
    values = {}
    if args.settings:
        with open(args.settings) as f:
            values = json.load(f)
    values.update({n: getattr(args, n) for n in SETTINGS_FLAGS if getattr(args, n) is not None})
    return values

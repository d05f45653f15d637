"""Training and validation of SegResNetVAE on one site's data; no FLARE in here."""

import ctypes
import logging
import math
import os
import time
from typing import Callable, Dict, Iterable, Optional

import torch
from monai.inferers import sliding_window_inference
from monai.losses import DiceLoss
from torch.nn.modules.loss import _Loss
from torch.nn.parallel import DistributedDataParallel

from fedbrats.runtime import distributed
from fedbrats.runtime.constants import MALLOC_TUNING_ENV, N_CASES, REGIONS
from fedbrats.runtime.data.loaders import data_errors, unwrapped
from fedbrats.runtime.metrics import case_metrics, site_metrics
from fedbrats.runtime.model import build_model, segmentation_logits
from fedbrats.runtime.settings import TrainSettings

logger = logging.getLogger(__name__)
Regulariser = Optional[Callable[[torch.nn.Module], torch.Tensor]]
"""A term added to the loss of every training step, computed from the model."""
AfterStep = Optional[Callable[[torch.nn.Module], None]]
"""Called with the model after every optimiser step (e.g. SCAFFOLD's correction)."""
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3


def select_device(preference: str = "auto") -> torch.device:
    """``auto`` takes the first CUDA device when there is one (FLARE's ``-gpu`` sets which)."""
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(preference)


def configure_cpu(num_threads: int = 0, processes: int = 1) -> int:
    """Set torch's CPU threads (``num_threads``, or the usable cores shared by ``processes`` training processes) and
    keep freed memory for reuse.

    glibc returns the large activation buffers of 3D networks to the OS after every step and
    page-faults them back in on the next one; raising its mmap and trim thresholds saves about
    a third of a CPU training step. ``FEDBRATS_MALLOC_TUNING=0`` leaves glibc's defaults. A site returns what
    it kept to the OS at the end of every FL task (FLARE's ``cleanup_memory``).
    """
    try:
        if os.environ.get(MALLOC_TUNING_ENV, "1") == "0":
            raise OSError("disabled")
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30)
        libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
        libc.mallopt(_M_TOP_PAD, 1 << 28)
    except (OSError, AttributeError):
        pass
    if num_threads <= 0:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        num_threads = max(1, cores // max(processes, 1))
    torch.set_num_threads(num_threads)
    return num_threads


class DiceBCELoss(_Loss):
    """Soft Dice smoothed by 1 plus binary cross-entropy, per sigmoid region output."""

    def __init__(self):
        super().__init__()
        self.dice = DiceLoss(smooth_nr=1.0, smooth_dr=1.0, squared_pred=True, sigmoid=True)
        self.bce = torch.nn.BCEWithLogitsLoss()

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.dice(logits, labels) + self.bce(logits, labels)


def segmentation_loss(name: str) -> _Loss:
    """Loss of the sigmoid region outputs (TC, WT, ET are nested, so each is its own binary problem).

    ``dice`` is the reference's soft Dice. ``dice_bce`` adds binary cross-entropy and smooths Dice by 1: a crop
    without ET (most LGG crops) then still penalises predicted ET, where the reference Dice has no gradient at all.
    """
    if name == "dice":
        return DiceLoss(smooth_nr=0, smooth_dr=1e-5, squared_pred=True, sigmoid=True)
    return DiceBCELoss()


class SegmentationEngine:
    """Model, Dice + VAE loss, Adam and (on CUDA) AMP for one site.

    When the process is one of several ranks of the site (:mod:`fedbrats.runtime.distributed`), training steps go
    through PyTorch's ``DistributedDataParallel``: each rank trains on its own batches and the gradients are averaged;
    ``model`` stays the plain network (weights, validation)."""

    def __init__(self, settings: TrainSettings, device: Optional[torch.device] = None):
        self.settings = settings
        ranks = distributed.current()
        self.device = device or (ranks.device if ranks else select_device())
        if self.device.type == "cpu":
            configure_cpu(settings.num_threads, distributed.local_processes())
        else:
            torch.backends.cudnn.benchmark = True
        self.use_amp = settings.amp and self.device.type == "cuda"
        self.model = build_model(settings).to(self.device)
        self.train_model = self.model
        """What training steps run: the model, or DDP around it with several ranks."""
        if ranks is not None:
            ids = [self.device.index] if self.device.type == "cuda" else None
            # MONAI's SegResNetVAE never uses its ``vae_fc2`` (the VAE's standard deviation is fixed by default)
            self.train_model = DistributedDataParallel(self.model, device_ids=ids, find_unused_parameters=True)
        self.loss_fn = segmentation_loss(settings.loss)
        self.reset_optimizer()

    def reset_optimizer(self) -> None:
        """A fresh Adam and AMP scaler: after a step that made the weights non-finite, their state is too."""
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=self.settings.learning_rate, weight_decay=self.settings.weight_decay
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)

    def set_progress(self, progress: float) -> float:
        """Set the learning rate for the part of the run that starts at ``progress`` (0 to 1); returns it."""
        lr = self.settings.learning_rate
        if self.settings.lr_schedule == "cosine":
            lr *= 0.5 * (1 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))
        self.learning_rate = lr
        return lr

    @property
    def learning_rate(self) -> float:
        """The optimiser's learning rate now."""
        return float(self.optimizer.param_groups[0]["lr"])

    @learning_rate.setter
    def learning_rate(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def _autocast(self):
        return torch.autocast(device_type=self.device.type, enabled=self.use_amp)

    def train_epoch(self, loader: Iterable, should_stop: Callable[[], bool] = lambda: False) -> Dict[str, float]:
        """One pass over ``loader`` (at most ``max_steps_per_epoch`` steps); returns mean loss and steps."""
        return self.train_steps(loader, self.settings.max_steps_per_epoch or math.inf, should_stop, passes=1)

    def train_round(
        self,
        loader: Iterable,
        should_stop: Callable[[], bool] = lambda: False,
        regulariser: Regulariser = None,
        after_step: AfterStep = None,
    ) -> Dict[str, float]:
        """The local work of one FL round: ``local_steps`` steps, or else ``local_epochs`` passes over ``loader``.

        ``regulariser(model)``, when given, is added to the loss of every step (e.g. FedProx's proximal term);
        ``after_step(model)`` runs after every optimiser step."""
        hooks = {"regulariser": regulariser, "after_step": after_step}
        if self.settings.local_steps:
            return self.train_steps(loader, self.settings.local_steps, should_stop, **hooks)
        cap = self.settings.max_steps_per_epoch
        epochs = self.settings.local_epochs
        return self.train_steps(loader, cap * epochs if cap else math.inf, should_stop, epochs, **hooks)

    def train_steps(
        self,
        loader: Iterable,
        steps: float,
        should_stop: Callable[[], bool] = lambda: False,
        passes: float = math.inf,
        regulariser: Regulariser = None,
        after_step: AfterStep = None,
    ) -> Dict[str, float]:
        """``steps`` optimiser steps, starting new passes over ``loader`` as needed (at most ``passes``).

        Returns the mean ``loss`` and its parts (``loss_segmentation``, ``loss_vae`` before its weight), ``steps``,
        ``crops``, ``seconds`` and whether ``should_stop`` ended them (``stopped``). With several ranks, each takes the
        same steps on the batches of its own ``loader``, the ranks :func:`~fedbrats.runtime.distributed.agree` before
        every step (a batch each, a pass over, a stop, a failure), ``steps`` counts the optimiser steps (each of every
        rank's batches), ``crops`` those of all ranks and the losses are their mean."""
        self.model.train()
        total = torch.zeros(3, device=self.device)
        done, passes_done, crops, start = 0, 0, 0, time.time()
        batches, pass_start, stopped = None, 0, False
        with data_errors():
            while done < steps and passes_done < passes:
                status, batch, error = distributed.OK, None, None
                if should_stop():
                    status = distributed.STOP
                else:
                    if batches is None:
                        batches, pass_start = iter(loader), done
                    try:
                        batch = next(batches)
                    except StopIteration:
                        status = distributed.END
                    except Exception as e:
                        error = unwrapped(e)
                status = distributed.agree(status, error)
                if status == distributed.STOP:
                    stopped = True
                    break
                if status == distributed.END:
                    passes_done, batches = passes_done + 1, None
                    if done == pass_start:
                        break
                    continue
                try:
                    total += self._step(batch, regulariser)
                except Exception as e:
                    failure = distributed.leave(e)  # alone: e itself
                    if failure is e:
                        raise
                    raise failure from e
                done += 1
                crops += len(batch["image"])
                if after_step is not None:
                    after_step(self.model)
        figures = (total / max(done, 1)).tolist()  # plain numbers: the losses are MONAI MetaTensors
        if distributed.current() is not None:
            summed = distributed.sum_over_ranks(torch.tensor([*figures, float(crops)], dtype=torch.float64))
            figures, crops = (summed[:3] / distributed.world_size()).tolist(), int(summed[3])
        loss, segmentation, vae = figures
        return {
            "loss": loss,
            "loss_segmentation": segmentation,
            "loss_vae": vae,
            "steps": done,
            "crops": crops,
            "seconds": time.time() - start,
            "stopped": stopped,
        }

    def _step(self, batch: Dict[str, torch.Tensor], regulariser: Regulariser = None) -> torch.Tensor:
        """One optimiser step; returns the step's loss, its segmentation loss and its VAE loss (detached)."""
        images = batch["image"].to(self.device, non_blocking=True)
        labels = batch["label"].to(self.device, non_blocking=True)
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            logits, vae_loss = self.train_model(images)
            segmentation = self.loss_fn(logits.float(), labels)
            loss = segmentation + self.settings.vae_weight * vae_loss.float()
        if regulariser is not None:
            loss = loss + regulariser(self.model)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return torch.stack((loss, segmentation, vae_loss.float())).detach()

    @torch.no_grad()
    def validate(self, loader: Iterable, should_stop: Callable[[], bool] = lambda: False) -> Dict[str, object]:
        """Sliding-window scores per region over the cases of ``loader`` (see :func:`evaluate`)."""
        self.model.eval()
        metrics = evaluate(self.model, loader, self.settings, self.device, self.use_amp, should_stop)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        return metrics

    def get_weights(self) -> Dict[str, torch.Tensor]:
        return {k: v.detach().cpu() for k, v in self.model.state_dict().items()}

    def set_weights(self, weights: Dict[str, object]) -> None:
        self.model.load_state_dict({k: torch.as_tensor(v) for k, v in weights.items()})


def region_masks(logits: torch.Tensor, settings: TrainSettings) -> torch.Tensor:
    """Thresholded sigmoid outputs (batch, TC/WT/ET, ...); an ET smaller than ``et_min_volume`` mm^3 is dropped."""
    masks = (logits.float().sigmoid() > 0.5).float()
    if settings.et_min_volume > 0:
        et = REGIONS.index("ET")
        volume = masks[:, et].flatten(1).sum(1) * settings.pixdim**3
        masks[volume < settings.et_min_volume, et] = 0
    return masks


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    loader: Iterable,
    settings: TrainSettings,
    device: torch.device,
    use_amp: bool = False,
    should_stop: Callable[[], bool] = lambda: False,
) -> Dict[str, object]:
    """Dice, HD95, sensitivity and specificity (:mod:`fedbrats.runtime.metrics`) of the thresholded sigmoid outputs,
    per region and case.

    Scored on the grid the model sees (the case resampled to ``settings.pixdim``), so HD95 is in mm of that grid.
    """
    model.eval()
    spacing = (settings.pixdim,) * 3
    cases, start = [], time.time()
    with data_errors():
        for batch in loader:
            if should_stop():
                break
            images = batch["image"].to(device)
            with torch.autocast(device_type=device.type, enabled=use_amp):
                logits = sliding_window_inference(
                    images,
                    roi_size=settings.window,
                    sw_batch_size=settings.sw_batch_size,
                    predictor=lambda x: segmentation_logits(model, x),
                    overlap=settings.sw_overlap,
                )
            masks = region_masks(logits, settings).bool().cpu().numpy()
            labels = torch.as_tensor(batch["label"]).bool().cpu().numpy()
            cases += [case_metrics(pred, ref, spacing) for pred, ref in zip(masks, labels)]
    out = site_metrics(cases)
    logger.debug("validated %d cases in %.1f s", out[N_CASES], time.time() - start)
    return out

"""Training and validation of the interactive model with simulated clicks; no FLARE in here.

A training step follows MONAI deepgrow's ``Interaction``: a few passes without gradients, each adding clicks where
the prediction is wrong, then one optimiser step on the input with every click. MONAI's class is not used as it is:
it drives an ignite engine (``prepare_batch``, ``inferer``, ``_iteration``), where the product's engine is a plain
loop with AMP, DDP, a regulariser and a stop between steps, and its guidance is one pair of click maps for one label,
where here three nested regions have a pair each and a starting segmentation comes with them. Its transforms draw
the clicks and the click maps (:mod:`~.clicks`, :mod:`~.guidance`).
"""

import logging
import time
from typing import Callable, Dict, Iterable, Optional

import numpy as np
import torch
import torch.nn.functional as F

from fedbrats.runtime.constants import DICE_METRICS, MEAN_DICE, N_CASES
from fedbrats.runtime.data.loaders import data_errors
from fedbrats.runtime.engine import Regulariser, SegmentationEngine
from fedbrats.runtime.interactive.clicks import RandomClicks
from fedbrats.runtime.interactive.guidance import model_input
from fedbrats.runtime.interactive.session import click_session, grid_segmenter, interactive_logits
from fedbrats.runtime.metrics import case_metrics, site_metrics
from fedbrats.runtime.settings import TrainSettings

logger = logging.getLogger(__name__)
EMPTY_START = 0.5
"""Share of training crops that start from no segmentation; the others start from their label, corrupted."""
MAX_SHIFT = 3
"""Largest growth or shrinkage in voxels of a corrupted label."""
DROP_REGION = 0.2
"""Chance that a corrupted label loses a region altogether."""
WITHOUT_CLICKS = "0_clicks"
"""Suffix of a validation's scores before any click (``dice_tc_0_clicks``, ``mean_dice_0_clicks``)."""


def without_clicks(name: str) -> str:
    return f"{name}_{WITHOUT_CLICKS}"


def corrupted(labels: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Region masks (batch, 3, ...) grown or shrunk by up to :data:`MAX_SHIFT` voxels each, some dropped: a starting
    segmentation with the errors a model makes at a border, or a region it missed."""
    out = labels.float().clone()
    for b in range(out.shape[0]):
        for k in range(out.shape[1]):
            shift = int(rng.integers(-MAX_SHIFT, MAX_SHIFT + 1))
            mask = out[b, k][None, None]
            if shift > 0:
                mask = F.max_pool3d(mask, 2 * shift + 1, stride=1, padding=shift)
            elif shift < 0:
                mask = 1 - F.max_pool3d(1 - mask, -2 * shift + 1, stride=1, padding=-shift)
            out[b, k] = 0 if rng.random() < DROP_REGION else mask[0, 0]
    return out


def site_engine(settings: TrainSettings, device: Optional[torch.device] = None) -> SegmentationEngine:
    """The engine of these settings: the interactive one when they say so."""
    return (InteractiveEngine if settings.interactive else SegmentationEngine)(settings, device)


class InteractiveEngine(SegmentationEngine):
    """:class:`~fedbrats.runtime.engine.SegmentationEngine` of the interactive model: each training step with
    simulated clicks, each validation scored after ``eval_clicks`` clicks per region (and before any)."""

    def __init__(self, settings: TrainSettings, device: Optional[torch.device] = None):
        if not settings.interactive:
            raise ValueError("InteractiveEngine needs interactive settings")
        super().__init__(settings, device)
        self.rng = np.random.default_rng(settings.seed)
        self.clicker = RandomClicks()
        self.clicker.set_random_state(settings.seed)

    def _start(self, labels: torch.Tensor) -> torch.Tensor:
        """Starting region masks of a batch: none for some crops, their labels corrupted for the others."""
        prior = corrupted(labels, self.rng)
        empty = torch.as_tensor(self.rng.random(labels.shape[0]) < EMPTY_START)
        prior[empty] = 0
        return prior

    def simulated_input(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The model's input of a training batch after 0 to ``max_clicks`` rounds of simulated clicks, each round a
        click per wrong region of every crop, drawn from the model's prediction with the clicks so far."""
        prior = self._start(labels)
        clicks = [[] for _ in range(images.shape[0])]
        reference = labels.bool().cpu().numpy()
        rounds = int(self.rng.integers(0, self.settings.max_clicks + 1))
        self.model.eval()
        for _ in range(rounds):
            with torch.no_grad(), self._autocast():
                logits = self.model(model_input(images, prior, clicks).to(self.device))[0]
            predicted = (logits.float() > 0).cpu().numpy()
            for b in range(images.shape[0]):
                clicks[b] += self.clicker.clicks(reference[b], predicted[b])
        self.model.train()
        return model_input(images, prior, clicks)

    def _step(self, batch: Dict[str, torch.Tensor], regulariser: Regulariser = None) -> torch.Tensor:
        images = torch.as_tensor(batch["image"]).float()
        inputs = self.simulated_input(images, torch.as_tensor(batch["label"]))
        return super()._step({"image": inputs, "label": batch["label"]}, regulariser)

    @torch.no_grad()
    def validate(self, loader: Iterable, should_stop: Callable[[], bool] = lambda: False) -> Dict[str, object]:
        """Scores of every region and case (:func:`~fedbrats.runtime.metrics.site_metrics`) after ``eval_clicks``
        clicks per region, each at the centre of the region's largest wrong part, from no segmentation; the Dice
        before any click beside them (``dice_tc_0_clicks`` ... ``mean_dice_0_clicks``)."""
        self.model.eval()
        logits = interactive_logits(self.model, self.settings, self.device)
        spacing, n = (self.settings.pixdim,) * 3, self.settings.eval_clicks
        cases, first, start = [], [], time.time()
        with data_errors():
            for batch in loader:
                if should_stop():
                    break
                for image, label in zip(batch["image"], batch["label"]):
                    reference = torch.as_tensor(label).bool().numpy()
                    session = click_session(grid_segmenter(logits, torch.as_tensor(image)[None]), reference, n, (n,))
                    cases.append(case_metrics(session["masks"][n], reference, spacing))
                    first.append(session["dice"][0])
        out = site_metrics(cases)
        for k, name in enumerate(DICE_METRICS):
            out[without_clicks(name)] = float(np.mean([d[k] for d in first])) if first else float("nan")
        out[without_clicks(MEAN_DICE)] = float(np.mean([out[without_clicks(m)] for m in DICE_METRICS]))
        out["clicks"] = n
        logger.debug("validated %d cases with %d clicks in %.1f s", out[N_CASES], n, time.time() - start)
        return out

"""A simulated user's session on one case: a segmentation, then clicks where it is wrong, scored after each."""

import time
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch

from fedbrats.runtime.interactive.clicks import Click, centre_clicks
from fedbrats.runtime.interactive.consistency import force_clicks
from fedbrats.runtime.interactive.guidance import model_input
from fedbrats.runtime.model import sliding_window_logits
from fedbrats.runtime.settings import TrainSettings

Segment = Callable[[List[Click]], np.ndarray]
"""Maps the clicks so far to region masks (TC, WT, ET) on the grid of the clicks."""
Logits = Callable[[torch.Tensor, Optional[torch.Tensor], Sequence[Click]], torch.Tensor]
"""Maps images (1, 4, ...), starting region masks (1, 3, ...; or None) and clicks on their grid to region logits
(1, 3, ...) on the CPU."""


def interactive_logits(model: torch.nn.Module, settings: TrainSettings, device: torch.device) -> Logits:
    """Sliding-window logits of the interactive ``model`` in the window of its settings; AMP on CUDA if enabled."""
    window = sliding_window_logits(model, settings, device)

    def logits(image: torch.Tensor, prior: Optional[torch.Tensor], clicks: Sequence[Click]) -> torch.Tensor:
        return window(model_input(torch.as_tensor(image).cpu(), prior, list(clicks)))

    return logits


def grid_segmenter(logits: Logits, image: torch.Tensor, prior: Optional[torch.Tensor] = None) -> Segment:
    """Region masks of one preprocessed case (``image``: 1, 4, ...) on its own grid, consistent with the clicks."""

    def segment(clicks: List[Click]) -> np.ndarray:
        masks = (logits(image, prior, clicks)[0] > 0).numpy()
        return force_clicks(masks, clicks)

    return segment


def dice(prediction: np.ndarray, reference: np.ndarray) -> float:
    """Dice of two masks of a region, 1 when both are empty (the BraTS rule of :mod:`fedbrats.runtime.metrics`)."""
    prediction, reference = np.asarray(prediction, bool), np.asarray(reference, bool)
    total = int(prediction.sum()) + int(reference.sum())
    return 1.0 if total == 0 else 2.0 * int((prediction & reference).sum()) / total


def click_session(segment: Segment, reference: np.ndarray, clicks: int, keep: Sequence[int] = ()) -> Dict[str, list]:
    """Segment, then ``clicks`` times add a click per wrong region (:func:`~.clicks.centre_clicks`: each at the
    centre of the region's largest wrong part) and segment again with every click so far.

    Returns ``dice``: per number of clicks (0 to ``clicks``) the Dice of each region (TC, WT, ET), ``seconds``: the
    time of each segmentation after a click (a region already right gets no click; once all are, the scores stay
    and nothing is timed), ``clicks``: every click made, and ``masks``: the masks after each number in ``keep``."""
    reference = np.asarray(reference, bool)
    given: List[Click] = []
    masks = segment(given)
    scores, seconds, kept = [], [], {}
    for n in range(clicks + 1):
        if n:
            new = centre_clicks(reference, masks)
            if new:
                given += new
                start = time.perf_counter()
                masks = segment(given)
                seconds.append(time.perf_counter() - start)
        scores.append([dice(m, r) for m, r in zip(masks, reference)])
        if n in keep:
            kept[n] = masks
    return {"dice": scores, "seconds": seconds, "clicks": given, "masks": kept}

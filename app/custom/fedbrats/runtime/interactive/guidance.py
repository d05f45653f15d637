"""The interactive model's input: the modalities, the starting segmentation and a click map per region and sign."""

from typing import Optional, Sequence

import numpy as np
import torch
from monai.apps.deepgrow.transforms import AddGuidanceSignald

from fedbrats.runtime.constants import REGIONS
from fedbrats.runtime.interactive.clicks import Click, regions_of

SIGMA = 2
"""Standard deviation in voxels of the Gaussian around a click (MONAI deepgrow's default)."""


def click_maps(clicks: Sequence[Click], shape: Sequence[int], sigma: float = SIGMA) -> np.ndarray:
    """Positive and negative click maps of each region (TC+, TC-, WT+, WT-, ET+, ET-) on a grid of ``shape``: each
    click a Gaussian scaled to 1 at its peak, as MONAI's ``AddGuidanceSignald`` draws them."""
    signal = AddGuidanceSignald(sigma=sigma)
    grid = np.empty((1, *shape), np.float32)
    maps = []
    for region_clicks in regions_of(clicks):
        guidance = [[list(c.position) for c in region_clicks if c.positive]]
        guidance.append([list(c.position) for c in region_clicks if not c.positive])
        maps.append(signal._get_signal(grid, guidance))
    return np.concatenate(maps)


def model_input(
    image: torch.Tensor,
    prior: Optional[torch.Tensor] = None,
    clicks: Sequence[Click] = (),
    sigma: float = SIGMA,
) -> torch.Tensor:
    """The interactive model's input (batch, 13, ...) of images (batch, 4, ...), starting region masks (batch, 3,
    ...; None: none) and the clicks of a single case (a batch of one) or one list per case."""
    image = torch.as_tensor(image).float()
    batch, shape = image.shape[0], tuple(image.shape[2:])
    if prior is None:
        prior = torch.zeros((batch, len(REGIONS), *shape))
    per_case = clicks if clicks and isinstance(clicks[0], (list, tuple)) else [list(clicks)] * batch
    maps = torch.stack([torch.from_numpy(click_maps(c, shape, sigma)) for c in per_case])
    return torch.cat((image, torch.as_tensor(prior).float().to(image.device), maps.to(image.device)), dim=1)

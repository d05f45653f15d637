"""Click maps peak at their clicks, in the channel of their region and sign."""

import numpy as np
import torch

from fedbrats.runtime.constants import INTERACTIVE_CHANNELS
from fedbrats.runtime.interactive.clicks import Click
from fedbrats.runtime.interactive.guidance import click_maps, model_input


def test_each_click_peaks_at_its_voxel_in_its_own_channel():
    clicks = [Click((4, 5, 6), True, "tc"), Click((10, 3, 2), False, "et"), Click((1, 1, 1), True, "et")]
    maps = click_maps(clicks, (16, 12, 8))
    assert maps.shape == (6, 16, 12, 8)
    assert np.unravel_index(maps[0].argmax(), maps[0].shape) == (4, 5, 6) and maps[0].max() == 1
    assert np.unravel_index(maps[5].argmax(), maps[5].shape) == (10, 3, 2)
    assert np.unravel_index(maps[4].argmax(), maps[4].shape) == (1, 1, 1)
    assert not maps[[1, 2, 3]].any()
    assert 0 < maps[0][6, 5, 6] < maps[0][5, 5, 6] < 1  # smoothed around the click


def test_the_model_input_stacks_images_start_and_click_maps():
    images, prior = torch.rand(2, 4, 8, 8, 8), torch.ones(2, 3, 8, 8, 8)
    inputs = model_input(images, prior, [[Click((1, 2, 3), True, "wt")], []])
    assert inputs.shape == (2, INTERACTIVE_CHANNELS, 8, 8, 8)
    assert torch.equal(inputs[:, :4], images) and torch.equal(inputs[:, 4:7], prior)
    assert inputs[0, 9, 1, 2, 3] == 1 and not inputs[1, 7:].any()
    assert not model_input(images[:1])[:, 4:].any()

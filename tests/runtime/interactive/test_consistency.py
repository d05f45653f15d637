"""A click always holds in the result, and the regions stay nested."""

import numpy as np

from fedbrats.runtime.interactive.clicks import Click
from fedbrats.runtime.interactive.consistency import force_clicks, nested

TC, WT, ET = 0, 1, 2


def test_positive_and_negative_clicks_force_a_ball_with_the_nested_regions():
    masks = np.zeros((3, 12, 12, 12), bool)
    out = force_clicks(masks, [Click((6, 6, 6), True, "et")])
    assert out[:, 6, 6, 6].all() and out[:, 8, 6, 6].all() and not out[:, 9, 6, 6].any()
    assert out[ET].sum() == out[TC].sum() == out[WT].sum() > 1
    masks = np.ones((3, 12, 12, 12), bool)
    out = force_clicks(masks, [Click((0, 0, 0), False, "tc")])
    assert out[WT, 0, 0, 0] and not out[TC, 0, 0, 0] and not out[ET, 0, 0, 0] and not out[ET, 2, 0, 0]


def test_a_later_click_wins_and_every_click_keeps_its_own_voxel():
    masks = np.zeros((3, 12, 12, 12), bool)
    clicks = [Click((5, 5, 5), True, "wt"), Click((6, 5, 5), False, "wt")]
    out = force_clicks(masks, clicks)
    assert out[WT, 5, 5, 5] and not out[WT, 6, 5, 5] and not out[WT, 7, 5, 5]
    assert force_clicks(masks, [Click((20, 0, 0), True, "wt")]).sum() == 0  # outside the grid: nothing


def test_nested_adds_inner_regions_to_outer_ones():
    masks = np.zeros((3, 4, 4, 4), bool)
    masks[ET, 1, 1, 1] = True
    out = nested(masks)
    assert out[:, 1, 1, 1].all() and out.sum() == 3

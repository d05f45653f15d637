"""Simulated clicks land in the wrong part of a segmentation, positive where it missed, negative where it is false."""

import numpy as np
import pytest

from fedbrats.runtime.interactive.clicks import Click, RandomClicks, centre_click, centre_clicks


def ball(shape, centre, radius):
    grid = np.indices(shape)
    return ((grid - np.array(centre)[:, None, None, None]) ** 2).sum(0) <= radius**2


def test_the_centre_click_is_the_deepest_voxel_of_the_largest_wrong_part():
    reference = ball((24, 24, 24), (12, 12, 12), 6)
    prediction = reference & ~ball((24, 24, 24), (12, 12, 15), 3)  # a missed part
    prediction |= ball((24, 24, 24), (3, 3, 3), 1)  # a smaller false part
    click = centre_click(reference, prediction, "wt")
    assert click == Click((12, 12, 15), True, "wt")
    click = centre_click(reference & ~prediction, prediction, "tc")
    assert not click.positive and (reference & prediction)[click.position]
    assert centre_click(reference, reference, "et") is None


def test_centre_clicks_give_one_click_per_wrong_region_only():
    reference = np.stack([ball((16, 16, 16), (8, 8, 8), r) for r in (3, 5, 2)])
    prediction = reference.copy()
    prediction[2] = False
    (click,) = centre_clicks(reference, prediction)
    assert click.region == "et" and click.positive and reference[2][click.position]


def test_random_clicks_land_in_the_larger_wrong_part():
    reference = ball((20, 20, 20), (10, 10, 10), 6)
    prediction = ball((20, 20, 20), (10, 10, 10), 3)
    clicker = RandomClicks()
    clicker.set_random_state(0)
    for _ in range(5):
        click = clicker.click(reference, prediction, "wt")
        assert click.positive and reference[click.position] and not prediction[click.position]
    click = clicker.click(prediction, reference, "wt")
    assert not click.positive and reference[click.position] and not prediction[click.position]
    assert clicker.click(reference, reference, "wt") is None


def test_a_click_names_a_region_and_three_indices():
    with pytest.raises(ValueError, match="region"):
        Click((1, 2, 3), True, "TC")
    with pytest.raises(ValueError, match="3 voxel"):
        Click((1, 2), True, "tc")
    assert Click((np.int64(1), 2, 3), False, "et").position == (1, 2, 3)

"""Dice against the number of clicks on hand-built cases whose answers are known."""

import numpy as np
import pytest

from fedbrats.runtime.interactive.consistency import force_clicks
from fedbrats.runtime.interactive.session import click_session, dice


def ball(shape, centre, radius):
    grid = np.indices(shape)
    return ((grid - np.array(centre)[:, None, None, None]) ** 2).sum(0) <= radius**2


REFERENCE = np.stack([ball((20, 20, 20), (10, 10, 10), 3)] * 3)


def test_a_segmenter_right_after_one_click_scores_one_from_the_first_click_on():
    session = click_session(lambda clicks: REFERENCE if clicks else np.zeros_like(REFERENCE), REFERENCE, 4, keep=(0, 4))
    assert session["dice"] == [[0.0] * 3] + [[1.0] * 3] * 4
    assert len(session["clicks"]) == 3 and all(c.positive and c.position == (10, 10, 10) for c in session["clicks"])
    assert len(session["seconds"]) == 1  # nothing left to click after the first
    assert not session["masks"][0].any() and np.array_equal(session["masks"][4], REFERENCE)


def test_clicks_that_only_force_their_ball_score_its_share_of_the_region():
    session = click_session(lambda clicks: force_clicks(np.zeros_like(REFERENCE), clicks), REFERENCE, 1)
    inner, outer = ball((5, 5, 5), (2, 2, 2), 2).sum(), REFERENCE[0].sum()  # 33 and 123 voxels
    assert session["dice"][1] == pytest.approx([2 * inner / (inner + outer)] * 3)


def test_dice_follows_the_brats_rule_for_empty_regions():
    empty = np.zeros((4, 4, 4), bool)
    assert dice(empty, empty) == 1.0
    assert dice(REFERENCE[0], REFERENCE[0]) == 1.0 and dice(REFERENCE[0], np.zeros_like(REFERENCE[0])) == 0.0

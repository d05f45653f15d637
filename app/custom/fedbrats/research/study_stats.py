"""The statistics of an accuracy study's results: case-by-case differences of two models with their 95% bootstrap
intervals, and the verdict an interval gives against a threshold."""

import random
from typing import List, Optional

from fedbrats.runtime.constants import DICE_METRICS, N_CASES, PER_CASE

BOOTSTRAP_SAMPLES = 10000
MET, MISSED, NOT_SHOWN = "met", "missed", "not shown"
"""A verdict: the whole 95% interval clears the threshold, none of it does, or it straddles the threshold."""
UNRECORDED = "not shown: recorded without per-case values"


def bootstrap(values: List[float], samples: int = BOOTSTRAP_SAMPLES) -> dict:
    """The mean of ``values`` and its 95% bootstrap interval (the values resampled with replacement, seeded)."""
    rng, n = random.Random(0), len(values)
    boots = sorted(sum(values[rng.randrange(n)] for _ in range(n)) / n for _ in range(samples))
    return {"mean": sum(values) / n, "interval_95": [boots[int(0.025 * samples)], boots[int(0.975 * samples) - 1]]}


def case_means(result: dict) -> List[float]:
    """Each case's mean Dice over the regions, in the order of the site's cases (evaluated where the study ran)."""
    per_case = result[PER_CASE]
    return [sum(per_case[m][i] for m in DICE_METRICS) / len(DICE_METRICS) for i in range(result[N_CASES])]


def pooled(model: dict, values) -> Optional[List[float]]:
    """``values(site result)`` of every site's cases, one list in the order of the sites; None when one is missing."""
    sites = model["sites"].values()
    if any(r is None or PER_CASE not in r for r in sites):
        return None
    return [v for r in sites for v in values(r)]


def paired_difference(a: Optional[List[float]], b: Optional[List[float]]) -> Optional[dict]:
    """``a`` minus ``b``, case by case on the same cases: the mean difference, its 95% bootstrap interval and the
    cases where ``a`` is higher."""
    if not a or not b:
        return None
    diffs = [x - y for x, y in zip(a, b)]
    return {**bootstrap(diffs), "better": sum(d > 0 for d in diffs), "cases": len(diffs)}


def site_difference(a: Optional[dict], b: Optional[dict]) -> Optional[dict]:
    """Model ``a`` minus model ``b`` on one site's cases, by each case's mean Dice (:func:`paired_difference`)."""
    if not a or not b or PER_CASE not in a or PER_CASE not in b:
        return None
    return paired_difference(case_means(a), case_means(b))


def verdict(interval: List[float], threshold: float, above: bool) -> str:
    """:data:`MET` when the whole interval is above (``above``) or below the threshold, :data:`MISSED` when the whole
    of it is on the other side, :data:`NOT_SHOWN` when it straddles the threshold."""
    low, high = interval
    if (low > threshold) if above else (high < threshold):
        return MET
    if (high < threshold) if above else (low > threshold):
        return MISSED
    return NOT_SHOWN


def interval_words(d: dict) -> str:
    low, high = d["interval_95"]
    return f"{d['mean']:+.4f} (95% interval {low:+.4f} to {high:+.4f})"


def short_interval(d: dict) -> str:
    low, high = d["interval_95"]
    return f"{d['mean']:+.4f} ({low:+.4f} to {high:+.4f})"


def verdict_words(d: dict, threshold: float, above: bool) -> str:
    """:func:`verdict` of ``d``'s interval; one that is not shown says the value and its interval."""
    found = verdict(d["interval_95"], threshold, above)
    return f"{NOT_SHOWN} ({short_interval(d)})" if found == NOT_SHOWN else found

"""Tables and the learning-curve plot of an accuracy study (:mod:`fedbrats.research.study`)."""

import os
import random
from typing import List, Optional

from fedbrats.evaluation.report import _fmt, region_table
from fedbrats.plots import DPI, pyplot, save
from fedbrats.runtime.constants import (
    CASES_WITH,
    DICE,
    DICE_METRICS,
    DICE_WITH,
    EMPTY_BOTH,
    MEAN_DICE,
    N_CASES,
    PER_CASE,
    metric_name,
)
from fedbrats.runtime.data.datalist import write_json

RESULTS = "results"
"""Default stem of the study's files: ``results.md``, ``results.json`` and ``results_curves.png``."""
CENTRAL_TARGETS = {"TC": 0.70, "WT": 0.85, "ET": 0.60}
"""Case-weighted Dice the centralised model must reach on held-out synthetic cases: the recipe learns."""
ARM_LABELS = {
    "central": "centralised (one model on the union of both sites' training cases)",
    "fedavg": "FedAvg through FLARE (2 sites)",
}


BOOTSTRAP_SAMPLES = 10000
MET, MISSED, NOT_SHOWN = "met", "missed", "not shown"
UNRECORDED = "not shown: recorded without per-case values"
"""A verdict: the whole 95% interval clears the threshold, none of it does, or it straddles the threshold."""


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


def arm_label(arm: str) -> str:
    kind, _, site = arm.partition("-")
    if kind == "finetuned":
        return f"FedAvg's final global model, fine-tuned at {site} on its own training cases"
    return ARM_LABELS.get(arm) or f"local-only {site} (its own training cases alone)"


def comparison_table(study: dict) -> List[str]:
    sites = list(study["sites"])
    et_with, et_empty = metric_name(DICE_WITH, "ET"), metric_name(EMPTY_BOTH, "ET")
    header = "| arm | model | " + " | ".join(f"{s} mean" for s in sites)
    header += " | AVE TC | AVE WT | AVE ET | AVE ET on cases with ET | ET scored 1 by the rule | AVE mean |"
    lines = [header, "|---" * (len(sites) + 8) + "|"]
    for arm, result in study["arms"].items():
        for which in ("final", "best"):
            m = result["models"][which]
            cells = [_fmt(m["sites"][s][MEAN_DICE] if m["sites"][s] else None) for s in sites]
            avg = m["average"] or {}
            cells += [_fmt(avg.get(k)) for k in DICE_METRICS]
            if et_with in avg:
                held = avg[metric_name(CASES_WITH, "ET")]
                cells += [
                    f"{_fmt(avg[et_with])} ({held} cases)",
                    f"{avg[et_empty]} of {avg[N_CASES] - held} without ET",
                ]
            else:
                cells += ["-", "-"]
            cells.append(_fmt(avg.get(MEAN_DICE)))
            lines.append(f"| {arm} | {which} | " + " | ".join(cells) + " |")
    return lines


def region_target(what: str, values: List[float], target: float) -> str:
    d = bootstrap(values)
    low, high = d["interval_95"]
    return f"| {what} | {d['mean']:.4f} ({low:.4f} to {high:.4f}) | {verdict(d['interval_95'], target, above=True)} |"


def targets(study: dict) -> List[str]:
    """The study's targets on the final models, each judged by its 95% bootstrap interval over the test cases: met
    only when the whole interval clears the threshold (:func:`verdict`)."""
    arms = study["arms"]
    last = list(study["sites"])[-1]
    lines = ["| target | measured (95% bootstrap interval over the test cases) | verdict |", "|---|---|---|"]

    def final(arm):
        return arms[arm]["models"]["final"]

    presence = study.get("test_presence") or {}
    if "central" in arms and final("central")["average"]:
        for region, target in CENTRAL_TARGETS.items():
            name = metric_name(DICE, region)
            values = pooled(final("central"), lambda r, name=name: r[PER_CASE][name])
            if values is None:
                point = final("central")["average"][name]
                lines.append(f"| centralised AVE {region} Dice at least {target:.2f} | {point:.4f} | {UNRECORDED} |")
                continue
            lines.append(region_target(f"centralised AVE {region} Dice at least {target:.2f}", values, target))
            held = [p for site in study["sites"] for p in presence.get(site, {}).get(region, [])]
            if held and len(held) == len(values) and not all(held):
                with_region = [v for v, p in zip(values, held) if p]
                what = f"centralised {region} Dice on the {len(with_region)} cases with {region} at least {target:.2f}"
                lines.append(region_target(what, with_region, target))
    if "central" in arms and "fedavg" in arms:
        gap = paired_difference(pooled(final("central"), case_means), pooled(final("fedavg"), case_means))
        if gap is None:
            point = final("central")["average"][MEAN_DICE] - final("fedavg")["average"][MEAN_DICE]
            lines.append(
                f"| FedAvg's mean Dice within 0.03 of centralised's | centralised minus FedAvg {point:+.4f} | "
                f"{UNRECORDED} |"
            )
        else:
            lines.append(
                f"| FedAvg's mean Dice within 0.03 of centralised's (aim 0.01), case by case on every test case | "
                f"centralised minus FedAvg {interval_words(gap)} | {verdict(gap['interval_95'], 0.03, above=False)} "
                f"(aim 0.01: {verdict(gap['interval_95'], 0.01, above=False)}) |"
            )
    tuned = f"FedAvg fine-tuned at {last} ({(study.get('fine_tune') or {}).get('steps')} more steps)"
    for arm, words in (("fedavg", "FedAvg"), (f"finetuned-{last}", tuned)):
        local = f"local-{last}"
        if arm in arms and local in arms:
            d = site_difference(final(arm)["sites"][last], final(local)["sites"][last])
            if d is None:
                point = final(arm)["sites"][last][MEAN_DICE] - final(local)["sites"][last][MEAN_DICE]
                lines.append(
                    f"| {words} above local-only {last} on {last}'s test cases | minus local-only "
                    f"{point:+.4f} | {UNRECORDED} |"
                )
            else:
                lines.append(
                    f"| {words} above local-only {last} on {last}'s test cases | minus local-only "
                    f"{interval_words(d)}, higher on {d['better']} of {d['cases']} | "
                    f"{verdict(d['interval_95'], 0.0, above=True)} |"
                )
    return lines + [
        "",
        f"A verdict is {MET} only when the whole interval clears the threshold, {MISSED} when none of it does, and "
        f"{NOT_SHOWN} when the interval straddles it: the test cases cannot tell.",
    ]


def plot_curves(study: dict, path: str) -> str:
    fig, ax = pyplot().subplots(figsize=(7, 4.2), dpi=DPI)
    for arm, result in study["arms"].items():
        curve = result["curve"]
        ax.plot([c["steps"] for c in curve], [c[MEAN_DICE] for c in curve], marker="o", markersize=3, label=arm)
    ax.set_xlabel("optimiser steps (all sites together)")
    ax.set_ylabel("validation mean Dice (TC, WT, ET)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title("Validation Dice against optimiser steps")
    return save(fig, path)


def fine_tune_words(study: dict) -> str:
    """How the fine-tuned arms trained, where the study has them."""
    tune = study.get("fine_tune")
    if not tune:
        return ""
    return (
        f" Each finetuned-<site> arm starts from FedAvg's final global model and trains {tune['steps']} more steps "
        f"at that site alone, on its own training cases (Adam {tune['learning_rate']:g}, the same cosine decay), "
        "its validation cases choosing the best model: a site adapting the federation's model to its own scans."
    )


def split_words(study: dict) -> str:
    """``: 16 training, 4 validation, 12 test`` where the study records its split."""
    split = study.get("split")
    return f": {split[0]} training, {split[1]} validation, {split[2]} test" if split else ""


def to_markdown(study: dict, curves_png: str = f"{RESULTS}_curves.png") -> str:
    s = study["settings"]
    sites = ", ".join(f"{site} {grade}-like" for site, grade in study["sites"].items())
    lines = (
        [
            "# Accuracy study: centralised vs FedAvg vs local-only",
            "",
            f"Command: `{study['command']}`; the arms trained and were evaluated in {study['arm_minutes']} min "
            f"(without writing the synthetic data) on {study.get('machine', 'an unrecorded machine')}.",
            "",
        ]
        + ([study["note"], ""] if study.get("note") else [])
        + [
            f"Data: {study['cases_per_site']} synthetic cases per site{split_words(study)} ({sites}), "
            f"seed {study['seed']}. "
            f"Every arm takes {study['steps']} optimiser steps counted over all sites, batch {s['batch_size']}, "
            f"crop {'x'.join(map(str, s['crop']))} at {s['pixdim']:g} mm, init_filters {s['init_filters']}, "
            f"loss {s['loss']}, Adam {s['learning_rate']:g}. "
            f"FedAvg runs {study['rounds']} rounds in FLARE's simulator, "
            f"each site taking {study['steps'] // (len(study['sites']) * study['rounds'])} steps per round."
            + fine_tune_words(study),
            "",
            "Every model is evaluated on every site's test split; AVE is weighted by each site's number of test "
            "cases. The final model is the one after the last step; the best is the one with the highest validation "
            "Dice (FedAvg: selected in time from the sites' case-weighted validation Dice).",
            "",
            "## Comparison",
            "",
        ]
        + comparison_table(study)
        + ["", "## Targets", ""]
        + targets(study)
        + [
            "",
            "How the CPU recipe was chosen, what holds tumour core and enhancing tumour back and what was tried: "
            "[training.md](training.md).",
            "",
            f"![validation Dice against optimiser steps]({curves_png})",
            "",
            "Validation cases: both sites' for the centralised and FedAvg arms, the site's own for local-only"
            + (" and fine-tuned arms." if any(a.startswith("finetuned") for a in study["arms"]) else " arms."),
            "",
        ]
    )
    for arm, result in study["arms"].items():
        for which in ("final", "best"):
            m = result["models"][which]
            lines += [
                f"## {arm}: {which} model",
                "",
                f"{arm_label(arm)}; trained in {result['train_minutes']} min.",
                "",
            ]
            lines += region_table(m["sites"], m["average"]) + [""]
    return "\n".join(lines)


def write_results(study: dict, docs: str, name: str = RESULTS) -> List[str]:
    """``<name>.md``, ``<name>.json`` and ``<name>_curves.png`` in ``docs``; returns their paths."""
    os.makedirs(docs, exist_ok=True)
    paths = [os.path.join(docs, f"{name}{ext}") for ext in (".md", ".json", "_curves.png")]
    with open(paths[0], "w") as f:
        f.write(to_markdown(study, os.path.basename(paths[2])))
    write_json(paths[1], study)
    plot_curves(study, paths[2])
    return paths

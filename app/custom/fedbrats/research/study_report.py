"""Tables and the learning-curve plot of an accuracy study (:mod:`fedbrats.research.study`)."""

import os
import random
from typing import List, Optional

from fedbrats.evaluation.plots import DPI, pyplot, save
from fedbrats.evaluation.report import DICE_COLUMNS, _fmt, region_table
from fedbrats.runtime.constants import DICE, DICE_METRICS, MEAN_DICE, PER_CASE, metric_name
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


def paired_difference(a: dict, b: dict) -> Optional[dict]:
    """Model ``a`` minus model ``b`` on the same site's cases: the mean of the per-case differences of mean Dice
    (TC, WT, ET), its 95% bootstrap interval (cases resampled, seeded) and the cases where ``a`` is better."""
    if not a or not b or PER_CASE not in a or PER_CASE not in b:
        return None
    means = [
        [sum(r[PER_CASE][m][i] for m in DICE_METRICS) / len(DICE_METRICS) for i in range(r["n_cases"])] for r in (a, b)
    ]
    diffs = [x - y for x, y in zip(*means)]
    rng, n = random.Random(0), len(diffs)
    boots = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(BOOTSTRAP_SAMPLES))
    return {
        "mean": sum(diffs) / n,
        "interval_95": [boots[int(0.025 * BOOTSTRAP_SAMPLES)], boots[int(0.975 * BOOTSTRAP_SAMPLES) - 1]],
        "better": sum(d > 0 for d in diffs),
        "cases": n,
    }


def difference_words(d: Optional[dict]) -> str:
    if d is None:
        return ""
    low, high = d["interval_95"]
    return (
        f"; per case {d['mean']:+.4f} (95% bootstrap interval {low:+.4f} to {high:+.4f}), "
        f"better on {d['better']} of {d['cases']}"
    )


def arm_label(arm: str) -> str:
    kind, _, site = arm.partition("-")
    if kind == "finetuned":
        return f"FedAvg's final global model, fine-tuned at {site} on its own training cases"
    return ARM_LABELS.get(arm) or f"local-only {site} (its own training cases alone)"


def comparison_table(study: dict) -> List[str]:
    sites = list(study["sites"])
    header = "| arm | model | " + " | ".join(f"{s} mean" for s in sites) + " | AVE TC | AVE WT | AVE ET | AVE mean |"
    lines = [header, "|---" * (len(sites) + 6) + "|"]
    for arm, result in study["arms"].items():
        for which in ("final", "best"):
            m = result["models"][which]
            cells = [_fmt(m["sites"][s][MEAN_DICE] if m["sites"][s] else None) for s in sites]
            avg = m["average"] or {}
            cells += [_fmt(avg.get(k)) for k in DICE_COLUMNS]
            lines.append(f"| {arm} | {which} | " + " | ".join(cells) + " |")
    return lines


def targets(study: dict) -> List[str]:
    """The centralised arm's region targets, and FedAvg's against the centralised and local-only arms; final models."""
    arms = study["arms"]

    def final(arm, site=None):
        m = arms[arm]["models"]["final"]
        r = m["average"] if site is None else m["sites"][site]
        return r[MEAN_DICE] if r else None

    def against_local(arm, site):
        return difference_words(
            paired_difference(
                arms[arm]["models"]["final"]["sites"][site], arms[f"local-{site}"]["models"]["final"]["sites"][site]
            )
        )

    lines = ["| target | measured | met |", "|---|---|---|"]
    if "central" in arms and arms["central"]["models"]["final"]["average"]:
        average = arms["central"]["models"]["final"]["average"]
        for region, target in CENTRAL_TARGETS.items():
            value = average[metric_name(DICE, region)]
            lines.append(
                f"| centralised AVE {region} Dice at least {target:.2f} | {value:.4f} "
                f"| {'yes' if value >= target else 'no'} |"
            )
    if "central" in arms and "fedavg" in arms:
        gap = final("central") - final("fedavg")
        lines.append(
            f"| FedAvg AVE mean Dice within 0.03 of centralised (aim 0.01) | central {final('central'):.4f}, "
            f"FedAvg {final('fedavg'):.4f}: gap {gap:+.4f} | {'yes' if gap <= 0.03 else 'no'} |"
        )
    last = list(study["sites"])[-1]
    if f"local-{last}" in arms and "fedavg" in arms:
        fed, local = final("fedavg", last), final(f"local-{last}", last)
        lines.append(
            f"| FedAvg above local-only {last} on {last}'s test cases | FedAvg {fed:.4f}, local-only {local:.4f}"
            f"{against_local('fedavg', last)} | {'yes' if fed > local else 'no'} |"
        )
    if f"local-{last}" in arms and f"finetuned-{last}" in arms:
        tuned, local = final(f"finetuned-{last}", last), final(f"local-{last}", last)
        steps = study["fine_tune"]["steps"]
        lines.append(
            f"| FedAvg fine-tuned at {last} ({steps} more steps) above local-only {last} on {last}'s test cases "
            f"| fine-tuned {tuned:.4f}, local-only {local:.4f}{against_local(f'finetuned-{last}', last)} "
            f"| {'yes' if tuned > local else 'no'} |"
        )
    return lines


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
            "Validation cases: both sites' for the centralised and FedAvg arms, the site's own for local-only and "
            "fine-tuned arms.",
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

"""Tables and the learning-curve plot of an accuracy study (:mod:`fedbrats.research.study`)."""

import os
from typing import List

from fedbrats.evaluation.report import _fmt, region_table
from fedbrats.plots import DPI, pyplot, save
from fedbrats.research.study_methods import (
    FINETUNED,
    METHOD_NAMES,
    convergence_score,
    has_other_methods,
    method_arms,
    method_words,
    methods_sections,
    site_info,
)
from fedbrats.research.study_stats import (
    MET,
    MISSED,
    NOT_SHOWN,
    UNRECORDED,
    bootstrap,
    case_means,
    interval_words,
    paired_difference,
    pooled,
    site_difference,
    verdict,
)
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
from fedbrats.runtime.fl.algorithms import DITTO

RESULTS = "results"
"""Default stem of the study's files: ``results.md``, ``results.json`` and ``results_curves.png``."""
CENTRAL_TARGETS = {"TC": 0.70, "WT": 0.85, "ET": 0.60}
"""Case-weighted Dice the centralised model must reach on held-out synthetic cases: the recipe learns."""


def sites_words(n: int) -> str:
    return "both sites'" if n == 2 else f"all {n} sites'"


def arm_label(arm: str, study: dict) -> str:
    kind, _, site = arm.partition("-")
    n = len(study["sites"])
    if kind == "finetuned":
        return f"FedAvg's final global model, fine-tuned at {site} on its own training cases"
    if arm == "central":
        return f"centralised (one model on the union of {sites_words(n)} training cases)"
    if arm in METHOD_NAMES:
        words = f"{method_words(arm, study['arms'][arm])} through FLARE ({n} sites)"
        return words + ("; its global model (each site's personal model below)" if arm == DITTO else "")
    return f"local-only {site} (its own training cases alone)"


def comparison_table(study: dict) -> List[str]:
    sites = list(study["sites"])
    et_with, et_empty = metric_name(DICE_WITH, "ET"), metric_name(EMPTY_BOTH, "ET")
    header = "| arm | model | " + " | ".join(f"{s} mean" for s in sites)
    header += " | AVE TC | AVE WT | AVE ET | AVE ET on cases with ET | ET scored 1 by the rule | AVE mean |"
    lines = [header, "|---" * (len(sites) + 8) + "|"]
    for arm, result in study["arms"].items():
        models = [(which, result["models"][which]) for which in ("final", "best")]
        if result.get("personal"):
            models.append(("personal, each site its own", result["personal"]))
        for which, m in models:
            cells = [_fmt(m["sites"][s][MEAN_DICE] if m["sites"].get(s) else None) for s in sites]
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
    """Validation Dice against optimiser steps, and beside it against wall-clock minutes where the curves have times
    (fine-tuned arms left out there: their times start at the fine-tuning)."""
    timed = {
        arm: r["curve"]
        for arm, r in study["arms"].items()
        if not arm.startswith(FINETUNED) and convergence_score(r["curve"]) is not None
    }
    fig, axes = pyplot().subplots(1, 2 if timed else 1, figsize=(13 if timed else 7, 4.2), dpi=DPI, squeeze=False)
    ax = axes[0][0]
    for arm, result in study["arms"].items():
        curve = result["curve"]
        ax.plot([c["steps"] for c in curve], [c[MEAN_DICE] for c in curve], marker="o", markersize=3, label=arm)
    ax.set_xlabel("optimiser steps (all sites together)")
    ax.set_title("Validation Dice against optimiser steps")
    if timed:
        for arm, curve in timed.items():
            minutes = [c["seconds"] / 60 for c in curve]
            axes[0][1].plot(minutes, [c[MEAN_DICE] for c in curve], marker="o", markersize=3, label=arm)
        axes[0][1].set_xlabel("wall-clock minutes of the arm's training")
        axes[0][1].set_title("Validation Dice against time")
    for a in axes[0]:
        a.set_ylabel("validation mean Dice (TC, WT, ET)")
        a.set_ylim(0, 1)
        a.grid(alpha=0.3)
        a.legend(loc="lower right")
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


def grade_words(grade: str) -> str:
    if grade in ("HGG", "LGG"):
        return f"{grade}-like"
    share = grade.partition("=")[2]
    return f"mixed-grade (HGG share {share})" if share else "mixed-grade"


def site_words(study: dict, site: str) -> str:
    """``site-1 HGG-like``, with the scanner profile where it is not the reference one."""
    info = site_info(study, site)
    scanner = f" ({info['profile']} scanner)" if info["profile"] != "reference" else ""
    return f"{site} {grade_words(info['grade'])}{scanner}"


def data_words(study: dict) -> str:
    """What the study's data was: one split for every site, or each site's own (a benchmark of unequal sites)."""
    if "cases_per_site" in study:
        sites = ", ".join(site_words(study, site) for site in study["sites"])
        cases = f"{study['cases_per_site']} synthetic cases per site{split_words(study)}"
        return f"Data: {cases} ({sites}), seed {study['seed']}. "
    sites = "; ".join(
        f"{site} {grade_words(info['grade'])}, {info['profile']} scanner: {info['split'][0]} training, "
        f"{info['split'][1]} validation, {info['split'][2]} test"
        for site, info in ((site, site_info(study, site)) for site in study["sites"])
    )
    job = f" of the {study['job']} job" if study.get("job") else ""
    where = f"the {len(study['sites'])} synthetic sites{job}, each with its own cases"
    return f"Data: {where} ({sites}), seed {study['seed']}. "


def federated_words(study: dict) -> str:
    """How the federated arms spend the budget."""
    per_round = study["steps"] // (len(study["sites"]) * study["rounds"])
    if not has_other_methods(study):
        return (
            f"FedAvg runs {study['rounds']} rounds in FLARE's simulator, each site taking {per_round} steps per round."
        )
    methods = ", ".join(method_words(m, study["arms"][m]) for m in method_arms(study))
    words = (
        f"The federated arms ({methods}) each run {study['rounds']} rounds in FLARE's simulator on the same budget, "
        f"each site taking {per_round} steps per round."
    )
    if DITTO in study["arms"]:
        words += (
            f" Ditto's sites also train a personal model each round, {per_round} more steps held near the global model "
            f"by its proximal term (twice the site steps); a Ditto site uses its best personal model."
        )
    return words


def to_markdown(study: dict, curves_png: str = f"{RESULTS}_curves.png") -> str:
    s = study["settings"]
    methods, hetero = has_other_methods(study), study.get("benchmark") == "hetero"
    title = "# Accuracy study: centralised vs " + ("aggregation methods" if methods or hetero else "FedAvg")
    title += " vs local-only" + (" on the heterogeneous benchmark" if hetero else "")
    federated = "federated" if methods else "FedAvg"
    lines = (
        [
            title,
            "",
            f"Command: `{study['command']}`; the arms trained and were evaluated in {study['arm_minutes']} min "
            f"(without writing the synthetic data) on {study.get('machine', 'an unrecorded machine')}.",
            "",
        ]
        + ([study["note"], ""] if study.get("note") else [])
        + [
            data_words(study)
            + f"Every arm takes {study['steps']} optimiser steps counted over all sites, batch {s['batch_size']}, "
            f"crop {'x'.join(map(str, s['crop']))} at {s['pixdim']:g} mm, init_filters {s['init_filters']}, "
            f"loss {s['loss']}, Adam {s['learning_rate']:g}. " + federated_words(study) + fine_tune_words(study),
            "",
            "Every model is evaluated on every site's test split; AVE is weighted by each site's number of test "
            "cases. The final model is the one after the last step; the best is the one with the highest validation "
            f"Dice ({'federated arms' if methods else 'FedAvg'}: selected in time from the sites' case-weighted "
            "validation Dice).",
            "",
            "## Comparison",
            "",
        ]
        + comparison_table(study)
        + ["", "## Targets", ""]
        + targets(study)
        + [""]
        + methods_sections(study)
        + [
            "How the CPU recipe was chosen, what holds tumour core and enhancing tumour back and what was tried: "
            "[training.md](training.md)"
            + (
                "; what the misses of (a) and (b) come from: "
                "[training.md](training.md#the-heterogeneous-benchmark-what-the-misses-of-a-and-b-come-from)."
                if study.get("benchmark") == "hetero"
                else "."
            ),
            "",
            f"![validation Dice against optimiser steps]({curves_png})",
            "",
            f"Validation cases: {sites_words(len(study['sites']))} for the centralised and {federated} arms, the "
            "site's own for local-only"
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
                f"{arm_label(arm, study)}; trained in {result['train_minutes']} min.",
                "",
            ]
            lines += region_table(m["sites"], m["average"]) + [""]
        if result.get("personal"):
            lines += [
                f"## {arm}: each site's personal model",
                "",
                "Each site's best personal model (chosen by its own validation cases) on its own test cases.",
                "",
            ]
            lines += region_table(result["personal"]["sites"], result["personal"]["average"]) + [""]
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

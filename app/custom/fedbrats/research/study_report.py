"""Tables and the learning-curve plot of an accuracy study (:mod:`fedbrats.research.study`)."""

import os
import random
from typing import Dict, List, Optional

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
from fedbrats.runtime.fl.algorithms import ALGORITHMS, DITTO, FEDAVG

RESULTS = "results"
"""Default stem of the study's files: ``results.md``, ``results.json`` and ``results_curves.png``."""
CENTRAL_TARGETS = {"TC": 0.70, "WT": 0.85, "ET": 0.60}
"""Case-weighted Dice the centralised model must reach on held-out synthetic cases: the recipe learns."""
METHOD_NAMES = {"fedavg": "FedAvg", "fedprox": "FedProx", "fedopt": "FedOpt", "scaffold": "SCAFFOLD", "ditto": "Ditto"}
FINETUNED = "finetuned"
"""The rows of FedAvg's final global model fine-tuned at each site, beside the methods'."""
CENTRAL_GAP = 0.01
"""Target (b): a method's global model within this mean Dice of the centralised model's."""
GAINS, LOSES, CANNOT_TELL = "gains", "loses", "cannot tell"


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


def short_interval(d: dict) -> str:
    low, high = d["interval_95"]
    return f"{d['mean']:+.4f} ({low:+.4f} to {high:+.4f})"


def verdict_words(d: dict, threshold: float, above: bool) -> str:
    """:func:`verdict` of ``d``'s interval; one that is not shown says the value and its interval."""
    found = verdict(d["interval_95"], threshold, above)
    return f"{NOT_SHOWN} ({short_interval(d)})" if found == NOT_SHOWN else found


def site_info(study: dict, site: str) -> dict:
    """``grade``, ``profile`` and ``split`` of a site of ``study``; a site recorded as its grade alone has the reference
    scanner and the study's one split."""
    value = study["sites"][site]
    if isinstance(value, str):
        return {"grade": value, "profile": "reference", "split": study.get("split")}
    return value


def training_cases(study: dict, site: str) -> Optional[int]:
    split = site_info(study, site).get("split")
    return split[0] if split else None


def sites_words(n: int) -> str:
    return "both sites'" if n == 2 else f"all {n} sites'"


def method_arms(study: dict) -> List[str]:
    """The aggregation methods the study ran, in :data:`ALGORITHMS`' order."""
    return [m for m in ALGORITHMS if m in study["arms"]]


def has_other_methods(study: dict) -> bool:
    return any(m != FEDAVG for m in method_arms(study))


def method_arguments(result: dict) -> dict:
    return ((result.get("key") or {}).get("job") or {}).get("algorithm_args") or {}


def method_words(method: str, result: dict) -> str:
    """``FedProx mu=0.01``: the method's name and arguments."""
    args = "".join(f" {k}={v}" for k, v in method_arguments(result).items())
    return METHOD_NAMES[method] + args


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


def own_model(result: dict, site: str) -> Optional[dict]:
    """The model a site uses of an arm, scored on the site's own test cases: its personal model where the arm has
    personal models (Ditto), else the arm's final model."""
    personal = (result.get("personal") or {}).get("sites") or {}
    return personal[site] if site in personal else result["models"]["final"]["sites"].get(site)


def own_kind(result: dict) -> str:
    return "best personal" if result.get("personal") else "final global"


def own_case_differences(study: dict) -> Dict[str, Dict[str, Optional[dict]]]:
    """``{method: {site: d}}``: the site's model of each method (:func:`own_model`; ``finetuned``: FedAvg's final
    global model fine-tuned at the site) minus the site's local-only final model, case by case on the site's own test
    cases (:func:`site_difference`); sites without a local-only arm are left out."""
    arms = study["arms"]
    sites = [s for s in study["sites"] if f"local-{s}" in arms]
    if not sites:
        return {}

    def local(site):
        return arms[f"local-{site}"]["models"]["final"]["sites"][site]

    out = {m: {s: site_difference(own_model(arms[m], s), local(s)) for s in sites} for m in method_arms(study)}
    tuned = {
        s: site_difference(own_model(arms[f"{FINETUNED}-{s}"], s), local(s))
        for s in sites
        if f"{FINETUNED}-{s}" in arms
    }
    if tuned:
        out[FINETUNED] = tuned
    return out


def who_gains(differences: Dict[str, Dict[str, Optional[dict]]]) -> Dict[str, Dict[str, List[str]]]:
    """``{method: {"gains": sites, "loses": sites, "cannot tell": sites}}``: a site gains when its interval lies
    above 0, loses when it lies below, and cannot tell otherwise (or without per-case values)."""
    table = {}
    for method, per_site in differences.items():
        row = {GAINS: [], LOSES: [], CANNOT_TELL: []}
        for site, d in per_site.items():
            found = verdict(d["interval_95"], 0.0, above=True) if d else NOT_SHOWN
            row[{MET: GAINS, MISSED: LOSES}.get(found, CANNOT_TELL)].append(site)
        table[method] = row
    return table


def convergence_score(curve: List[dict]) -> Optional[float]:
    """The area under the best-so-far validation Dice against wall-clock seconds, divided by the run's length (the
    last point's time): 1.0 is a perfect model from the start. The best-so-far is 0 before the first point and holds
    from each point to the next. None where a point has no time."""
    if not curve or any(c.get("seconds") is None or c.get(MEAN_DICE) is None for c in curve):
        return None
    points = sorted((c["seconds"], c[MEAN_DICE]) for c in curve)
    length = points[-1][0]
    if length <= 0:
        return None
    area, best = 0.0, 0.0
    for (start, dice), (end, _) in zip(points, points[1:]):
        best = max(best, dice)
        area += best * (end - start)
    return area / length


def method_label(method: str) -> str:
    return "FedAvg fine-tuned at the site" if method == FINETUNED else METHOD_NAMES[method]


def own_case_table(study: dict, differences: Dict[str, Dict[str, Optional[dict]]]) -> List[str]:
    arms = study["arms"]
    lines = [
        "| site | training cases | method | model | mean Dice | local-only | difference (95% interval) | higher on |",
        "|---" * 8 + "|",
    ]
    for site in study["sites"]:
        local = arms.get(f"local-{site}", {}).get("models", {}).get("final", {}).get("sites", {}).get(site)
        for method, per_site in differences.items():
            if site not in per_site:
                continue
            result = arms[f"{FINETUNED}-{site}" if method == FINETUNED else method]
            model, d = own_model(result, site), per_site[site]
            kind = "final" if method == FINETUNED else own_kind(result)
            mean = model[MEAN_DICE] if model else None
            cells = [
                site,
                str(training_cases(study, site) or "-"),
                method_label(method),
                kind,
                _fmt(mean),
                _fmt(local[MEAN_DICE] if local else None),
                short_interval(d) if d else "-",
                f"{d['better']} of {d['cases']}" if d else "-",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def who_gains_table(differences: Dict[str, Dict[str, Optional[dict]]]) -> List[str]:
    lines = ["| method | gains (interval above 0) | loses (interval below 0) | cannot tell |", "|---|---|---|---|"]
    for method, row in who_gains(differences).items():
        cells = [", ".join(row[k]) or "none" for k in (GAINS, LOSES, CANNOT_TELL)]
        lines.append(f"| {method_label(method)} | " + " | ".join(cells) + " |")
    return lines


def convergence_table(study: dict) -> List[str]:
    """The centralised and the federated arms whose curves have times: their :func:`convergence_score`."""
    rows = []
    for arm in ["central"] + method_arms(study):
        curve = study["arms"].get(arm, {}).get("curve") or []
        score = convergence_score(curve)
        if score is None:
            continue
        best = max(curve, key=lambda c: c[MEAN_DICE])
        length = max(c["seconds"] for c in curve)
        name = "centralised" if arm == "central" else METHOD_NAMES[arm]
        rows.append(
            f"| {name} | {score:.4f} | {best[MEAN_DICE]:.4f} | {best['seconds'] / 60:.1f} | {length / 60:.1f} |"
        )
    if not rows:
        return []
    return [
        "| arm | convergence score | best validation mean Dice | reached after (min) | training (min) |",
        "|---|---|---|---|---|",
    ] + rows


def gain_verdict(per_site: Dict[str, Optional[dict]], smallest: List[str]) -> str:
    """Target (a): missed when a site's interval lies below 0, met when none does and the ``smallest`` sites' lie
    above 0, else not shown (naming the smallest sites' values and intervals)."""
    if any(d is None for d in per_site.values()):
        return UNRECORDED
    if any(d["interval_95"][1] < 0 for d in per_site.values()):
        return MISSED
    if all(per_site[s]["interval_95"][0] > 0 for s in smallest):
        return MET
    return f"{NOT_SHOWN} ({'; '.join(f'{s} {short_interval(per_site[s])}' for s in smallest)})"


def smallest_sites(study: dict, n: int = 2) -> List[str]:
    """The ``n`` sites with the fewest training cases, in the study's order."""
    sites = list(study["sites"])
    chosen = sorted(sites, key=lambda s: (training_cases(study, s) or 0, sites.index(s)))[:n]
    return [s for s in sites if s in chosen]


def method_targets(study: dict) -> List[str]:
    """Targets of the aggregation methods: on the heterogeneous benchmark (a) a method's model (Ditto: the sites'
    personal models) no worse than local-only on any site's own test cases and better on the two smallest sites, and
    (b) its global model within :data:`CENTRAL_GAP` of the centralised model; on the reference pair (c) each method
    above local-only on the LGG site's own test cases."""
    arms, methods = study["arms"], method_arms(study)
    differences = own_case_differences(study)
    sites = list(study["sites"])
    lines = []
    if study.get("benchmark") == "hetero":
        smallest = smallest_sites(study)
        meet = {"a": [], "b": []}
        missed = {"a": [], "b": []}
        for method in methods:
            per_site = differences.get(method, {})
            if len(per_site) != len(sites):
                continue
            found = gain_verdict(per_site, smallest)
            meet["a"] += [method] if found == MET else []
            missed["a"] += [method] if found == MISSED else []
            measured = "; ".join(f"{s} {short_interval(d)}" if d else f"{s} -" for s, d in per_site.items())
            lines.append(
                f"| (a) {METHOD_NAMES[method]}'s {own_kind(arms[method])} model at least as good as local-only on "
                f"every site's own test cases, above it on {' and '.join(smallest)} | minus local-only: {measured} | "
                f"{found} |"
            )
        if "central" in arms:
            for method in methods:
                gap = paired_difference(
                    pooled(arms["central"]["models"]["final"], case_means),
                    pooled(arms[method]["models"]["final"], case_means),
                )
                if gap is None:
                    continue
                found = verdict(gap["interval_95"], CENTRAL_GAP, above=False)
                meet["b"] += [method] if found == MET else []
                missed["b"] += [method] if found == MISSED else []
                lines.append(
                    f"| (b) {METHOD_NAMES[method]}'s final global model within {CENTRAL_GAP} of centralised's, case by "
                    f"case on every test case | centralised minus {METHOD_NAMES[method]} {interval_words(gap)} | "
                    f"{verdict_words(gap, CENTRAL_GAP, above=False)} |"
                )
        both = [m for m in meet["a"] if m in meet["b"]]
        if lines:
            ruled_out = all(m in missed["a"] or m in missed["b"] for m in methods)
            found = MET if both else (MISSED if ruled_out else NOT_SHOWN)
            names = ", ".join(METHOD_NAMES[m] for m in both) or "none"
            lines.append(f"| (a) and (b) by one method | methods meeting both: {names} | {found} |")
    lgg = next((s for s in sites if site_info(study, s).get("grade") == "LGG"), None)
    if study.get("benchmark") == "reference" and lgg:
        for method in methods:
            d = differences.get(method, {}).get(lgg)
            if d is None:
                continue
            lines.append(
                f"| (c) {METHOD_NAMES[method]}'s {own_kind(arms[method])} model above local-only {lgg} on {lgg}'s "
                f"test cases (the LGG miss closed) | minus local-only {interval_words(d)}, higher on {d['better']} of "
                f"{d['cases']} | {verdict_words(d, 0.0, above=True)} |"
            )
    if not lines:
        return []
    return (
        ["| target | measured (95% bootstrap interval over the test cases) | verdict |", "|---|---|---|"]
        + lines
        + [
            "",
            f"(a) is {MISSED} when any site's interval lies below zero (the site is shown to lose), {MET} when none "
            f"does and the intervals of the two sites with the fewest training cases lie above zero. A verdict "
            f"{NOT_SHOWN} gives the value and its interval.",
        ]
    )


def methods_sections(study: dict) -> List[str]:
    """The aggregation methods' sections: each site's own cases under every method against local-only, who gains,
    convergence against wall-clock time and the methods' targets; none for results that name no benchmark."""
    if "benchmark" not in study:
        return []
    differences = own_case_differences(study)
    lines = []
    if differences:
        lines += [
            "### Each site's own test cases: every method against local-only",
            "",
            "The model a site uses under each method (the final global model; Ditto: the site's best personal model; "
            "fine-tuned: FedAvg's final global model fine-tuned at the site) minus the site's local-only final model, "
            "case by case (mean Dice of TC, WT and ET) on the site's own test cases, with the 95% bootstrap interval.",
            "",
            *own_case_table(study, differences),
            "",
            "### Who gains",
            "",
            *who_gains_table(differences),
            "",
        ]
    convergence = convergence_table(study)
    if convergence:
        lines += [
            "### Convergence",
            "",
            "The convergence score is the area under the best-so-far validation mean Dice against wall-clock time, "
            "divided by the training's length (1.0: a perfect model from the start; the best-so-far counts 0 before "
            "the first validation). Federated arms: the sites' case-weighted validation Dice of each round's global "
            "model, timed when the model was made; the centralised arm: its validation on the union's cases.",
            "",
            *convergence,
            "",
        ]
    targets_of_methods = method_targets(study)
    if targets_of_methods:
        lines += ["### Targets of the aggregation methods", "", *targets_of_methods, ""]
    return ["## Aggregation methods", "", *lines] if lines else []


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
            "[training.md](training.md).",
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

"""The aggregation methods' part of an accuracy study's results page: each site's own cases under every method
against local-only, who gains, convergence against wall-clock time and the methods' targets."""

from typing import Dict, List, Optional

from fedbrats.evaluation.report import _fmt
from fedbrats.research.study_stats import (
    MET,
    MISSED,
    NOT_SHOWN,
    UNRECORDED,
    case_means,
    interval_words,
    paired_difference,
    pooled,
    short_interval,
    site_difference,
    verdict,
    verdict_words,
)
from fedbrats.runtime.constants import MEAN_DICE
from fedbrats.runtime.fl.algorithms import ALGORITHMS, FEDAVG

METHOD_NAMES = {"fedavg": "FedAvg", "fedprox": "FedProx", "fedopt": "FedOpt", "scaffold": "SCAFFOLD", "ditto": "Ditto"}
FINETUNED = "finetuned"
"""The rows of FedAvg's final global model fine-tuned at each site, beside the methods'."""
CENTRAL_GAP = 0.01
"""Target (b): a method's global model within this mean Dice of the centralised model's."""
GAINS, LOSES, CANNOT_TELL = "gains", "loses", "cannot tell"


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
            closed = MISSED if d["interval_95"][1] < 0 else MET
            above = verdict_words(d, 0.0, above=True)
            lines.append(
                f"| (c) {METHOD_NAMES[method]}'s {own_kind(arms[method])} model: the LGG miss closed, its interval "
                f"against local-only {lgg} on {lgg}'s test cases not below zero | minus local-only "
                f"{interval_words(d)}, higher on {d['better']} of {d['cases']} | {closed}; above local-only: {above} |"
            )
    if not lines:
        return []
    notes = []
    if any(line.startswith("| (a) ") for line in lines):
        notes.append(
            f"(a) is {MISSED} when any site's interval lies below zero (the site is shown to lose), {MET} when none "
            "does and the intervals of the two sites with the fewest training cases lie above zero."
        )
    if any(line.startswith("| (c) ") for line in lines):
        notes.append(
            f"(c) is {MET} when the interval is not below zero (the site is not shown to lose by joining); beside it, "
            "whether the model is shown above the site's own."
        )
    notes.append(f"A verdict {NOT_SHOWN} gives the value and its interval.")
    header = ["| target | measured (95% bootstrap interval over the test cases) | verdict |", "|---|---|---|"]
    return header + lines + ["", " ".join(notes)]


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

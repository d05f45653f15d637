"""Cross-site evaluation report: per-site Dice, HD95, sensitivity and specificity of every model, the case-weighted
average, pictures."""

import argparse
import glob
import json
import os
import sys
from typing import Dict, List, Optional

from fedbrats.evaluation.learning_curves import learning_curves
from fedbrats.evaluation.report_figures import write_figures
from fedbrats.prepare.site_specs import site_order
from fedbrats.runtime.constants import (
    CASES_WITH,
    DICE_METRICS,
    DICE_WITH,
    EMPTY_BOTH,
    HD95_METRICS,
    MEAN_DICE,
    N_CASES,
    PER_CASE,
    REGIONS,
    SCORE_METRICS,
    SENSITIVITY_METRICS,
    SPECIFICITY_METRICS,
    metric_name,
)
from fedbrats.runtime.data.datalist import write_json
from fedbrats.runtime.fl.model_selector import SELECTION_FILE

RESULTS_FILE = "cross_val_results.json"
FINAL_GLOBAL, BEST_GLOBAL = "SRV_FL_global_model.pt", "SRV_best_FL_global_model.pt"
SERVER_MODEL = "SRV_"
"""FLARE's prefix of the server's models in the results: an evaluation job's given models are ``SRV_<name>``."""
DICE_COLUMNS = DICE_METRICS + (MEAN_DICE,)
"""A report's Dice per region and their mean, named as the sites name them."""
DETECTION_COLUMNS = SENSITIVITY_METRICS + SPECIFICITY_METRICS
OPTIONAL_SCORES = (HD95_METRICS, DETECTION_COLUMNS)
"""Scores per region a result may lack (sent by sites of earlier versions without them): each group kept whole or not
at all."""


def find_file(path: str, name: str) -> Optional[str]:
    """``path`` itself, or the newest file called ``name`` below it."""
    if os.path.isfile(path):
        return path
    found = glob.glob(os.path.join(path, "**", name), recursive=True)
    return max(found, key=os.path.getmtime) if found else None


def _numbers(values: object, n: int) -> bool:
    return isinstance(values, list) and len(values) == n and all(isinstance(v, (int, float)) for v in values)


def site_result(metrics: object) -> Optional[Dict[str, object]]:
    """The scores of one (model, site) result: Dice per region and their mean, HD95, sensitivity and specificity per
    region and per-case values when the site sent them, and the case count; None if the result is missing or
    incomplete."""
    if not isinstance(metrics, dict) or not all(isinstance(metrics.get(m), (int, float)) for m in DICE_METRICS):
        return None
    n = metrics.get(N_CASES)
    if not isinstance(n, int) or n <= 0:
        return None
    out = {m: float(metrics[m]) for m in DICE_METRICS}
    out[MEAN_DICE] = float(metrics.get(MEAN_DICE, sum(out.values()) / len(DICE_METRICS)))
    for group in OPTIONAL_SCORES:
        if all(isinstance(metrics.get(m), (int, float)) for m in group):
            out.update({m: float(metrics[m]) for m in group})
    if all(isinstance(metrics.get(m), int) for r in REGIONS for m in (with_name(r), empty_name(r))):
        for region in REGIONS:
            dice_with = metrics.get(metric_name(DICE_WITH, region))
            out[with_name(region)], out[empty_name(region)] = metrics[with_name(region)], metrics[empty_name(region)]
            out[metric_name(DICE_WITH, region)] = float(dice_with) if isinstance(dice_with, (int, float)) else None
    per_case = metrics.get(PER_CASE)
    if isinstance(per_case, dict):
        kept = {m: [float(v) for v in per_case[m]] for m in SCORE_METRICS if _numbers(per_case.get(m), n)}
        if kept:
            out[PER_CASE] = kept
    out[N_CASES] = n
    return out


def with_name(region: str) -> str:
    return metric_name(CASES_WITH, region)


def empty_name(region: str) -> str:
    return metric_name(EMPTY_BOTH, region)


def weighted_average(results: Dict[str, Optional[dict]]) -> Optional[dict]:
    """(sum of x_s n_s) / (sum of n_s) of Dice per region and mean over the sites that have a result; HD95,
    sensitivity and specificity too when every one of them has them."""
    present = [r for r in results.values() if r is not None]
    total = sum(r[N_CASES] for r in present)
    if not total:
        return None
    keys = DICE_COLUMNS
    for group in OPTIONAL_SCORES:
        if all(k in r for r in present for k in group):
            keys += group
    out = {k: sum(r[k] * r[N_CASES] for r in present) / total for k in keys}
    out[N_CASES] = total
    if all(with_name(region) in r for r in present for region in REGIONS):
        for region in REGIONS:
            dice_with, cases_with = metric_name(DICE_WITH, region), with_name(region)
            holding = [r for r in present if r[cases_with]]
            out[cases_with] = sum(r[cases_with] for r in present)
            out[empty_name(region)] = sum(r[empty_name(region)] for r in present)
            out[dice_with] = (
                sum(r[dice_with] * r[cases_with] for r in holding) / out[cases_with] if out[cases_with] else None
            )
    return out


def given_model(model: str) -> bool:
    """A model an evaluation job (``brats_eval``) was given to score."""
    return model.startswith(SERVER_MODEL) and model not in (FINAL_GLOBAL, BEST_GLOBAL)


def model_label(model: str, final_round: Optional[int], best_round: Optional[int]) -> str:
    if given_model(model):
        return f"given model {model[len(SERVER_MODEL) :]}"
    if model == FINAL_GLOBAL:
        return f"global model after {final_round} rounds" if final_round else "final global model"
    if model == BEST_GLOBAL:
        return (
            f"global best model (round {best_round}, selected in time)"
            if best_round is not None
            else "global best model"
        )
    return f"{model} best model (selected by {model}'s local validation)"


def short_label(model: str, final_round: Optional[int], best_round: Optional[int]) -> str:
    """Label of a model in the pictures."""
    if given_model(model):
        return model[len(SERVER_MODEL) :]
    if model == FINAL_GLOBAL:
        return f"final global (round {final_round})" if final_round else "final global"
    if model == BEST_GLOBAL:
        return f"best global (round {best_round})" if best_round is not None else "best global"
    return f"{model} best local"


def build_report(results: dict, selection: Optional[dict] = None, env: Optional[str] = None) -> dict:
    """Report data from ``{evaluating site: {model: metrics}}`` as written by FLARE's cross-site evaluation.

    ``env``: where the job ran (``poc``, ``prod``; None: not known), for the command that resumes an aborted run.
    """
    history = (selection or {}).get("history") or []
    aborted = (selection or {}).get("aborted")
    evaluated = any(results.values())
    participants = set((selection or {}).get("participants") or [])
    given = sorted({m for r in results.values() for m in r if given_model(m)})
    site_models = {m for r in results.values() for m in r} - {FINAL_GLOBAL, BEST_GLOBAL} - set(given)
    # a site whose every evaluation failed is absent from the results: find it from the job's sites, its model or
    # its scores
    scored = {s for h in history for s in h.get("sites", {})}
    sites = sorted(set(results) | site_models | scored | participants, key=site_order)
    # an evaluation job's given models stand where a training job's global models do
    models = (given or [FINAL_GLOBAL, BEST_GLOBAL]) + sorted(site_models, key=site_order)
    if aborted and not evaluated:  # the cross-site evaluation never ran: nothing to show as missing
        models = []
    final_round = max((h["round"] for h in history), default=None)
    best_round = (selection or {}).get("best_round")
    splits = {r.get("split") for per_site in results.values() for r in per_site.values() if isinstance(r, dict)} - {
        None
    }
    warnings, rows = [], []
    for model in models:
        per_site = {s: site_result(results.get(s, {}).get(model)) for s in sites}
        for site, result in per_site.items():
            if result is None:
                warnings.append(f"no result of {model} on {site}: shown as missing, left out of the average")
        rows.append(
            {
                "model": model,
                "label": model_label(model, final_round, best_round),
                "short": short_label(model, final_round, best_round),
                "sites": per_site,
                "average": weighted_average(per_site),
            }
        )
    cases = {s: max((r["sites"][s][N_CASES] for r in rows if r["sites"][s]), default=None) for s in sites}
    lost = lost_sites(sites, rows, history, final_round, (selection or {}).get("lost") or {}, bool(aborted))
    ended = abort_text(aborted) if aborted else run_end_text((selection or {}).get("stopped"), final_round)
    alive = [s for s in sites if s not in lost]
    return {
        "split": ", ".join(sorted(splits)) or "unknown",
        "ended": ended,
        "aborted": aborted,
        "not_evaluated": not_evaluated_text(alive) if aborted and not evaluated else None,
        "resume": resume_text(aborted, (selection or {}).get("run_state"), sorted(lost), alive, env)
        if aborted
        else None,
        "cases": cases,
        "sites": sites,
        "models": rows,
        "lost_sites": lost,
        "warnings": [lost_site_text(s, r) for s, r in lost.items()] + warnings,
    }


def abort_text(aborted: dict) -> str:
    """When and why the job was aborted, from the selection's ``aborted`` entry."""
    done = aborted.get("rounds_done") or 0
    planned = f" of {aborted['planned']}" if aborted.get("planned") else ""
    if aborted.get("round") is not None:
        when = f"in round {aborted['round']}{planned}, after {done} completed round{'s' if done != 1 else ''}"
    else:
        when = f"after its {done} rounds"
    return f"**The job was aborted** {when}: {aborted['reason']}."


def not_evaluated_text(alive: List[str]) -> str:
    named = " and ".join([", ".join(alive[:-1]), alive[-1]] if len(alive) > 1 else alive)
    sites = f" {named} {'were' if len(alive) > 1 else 'was'} alive until the abort: not lost." if alive else ""
    return (
        "The cross-site evaluation did not run because the job was aborted: no model has a cross-site result." + sites
    )


def resume_text(
    aborted: dict, run_state: Optional[dict], lost: List[str], alive: List[str], env: Optional[str] = None
) -> str:
    """The command that resumes an aborted run from the state its server kept (``--resume-from``)."""
    done = aborted.get("rounds_done") or 0
    if done < 1:
        return "No round was completed, so there is nothing to resume from: submit the job again."
    if not run_state or not run_state.get("folder"):
        return "The server kept no run state of this job (no run_state folder was named): it cannot be resumed."
    flags = {"poc": "--env poc", "sim": ""}.get(env, "--env prod --startup-kit KIT")
    command = " ".join(f"python jobs/{run_state['job']}/job.py {flags} --resume-from {run_state['folder']}".split())
    where = "" if env in ("poc", "sim") else " (in a POC system: `--env poc`)"
    without = (
        f"; to go on without {', '.join(lost)}, add `--sites {' '.join(alive)} --min-clients {len(alive)}`"
        if lost and alive
        else ""
    )
    return (
        f"Resume the run from round {done + 1} (the global model of round {done}) on the server's machine with "
        f'`{command}`{where}{without} (docs/deployment.md, "Resuming a run after the server restarts").'
    )


def run_end_text(stopped: Optional[dict], final_round: Optional[int]) -> Optional[str]:
    """Why and at which round the rounds ended, from the selection's ``stopped`` entry; None without rounds."""
    if stopped:
        return (
            f"The rounds stopped early, after round {stopped['round']} of {stopped['planned']} planned: "
            f"{stopped['reason']}. The final global model is the one of round {stopped['round']}."
        )
    return f"The run ended after its {final_round} rounds." if final_round else None


def lost_sites(
    sites: List[str],
    rows: List[dict],
    history: List[dict],
    final_round: Optional[int],
    disconnected: dict,
    aborted: bool = False,
) -> dict:
    """Sites that scored no model in the cross-site evaluation and either were given up by the server
    (``disconnected``: the round it did) or stopped scoring the global models before the last round; each with the
    last round whose global model it scored (None: none), from the selection's history (the final entry is the final
    model's scoring). A site that scored the final model but no cross-site result is not lost: its evaluation
    failed, which the report's warnings say model by model. In an ``aborted`` job only the sites the server gave up
    are lost: the others were alive until the abort."""
    lost = {}
    for site in sites:
        if any(row["sites"][site] for row in rows) or (aborted and site not in disconnected):
            continue
        answered = [h["round"] for h in history if site in h.get("sites", {})]
        last = max(answered, default=None)
        if site not in disconnected and last is not None and last == final_round:
            continue
        lost[site] = {"last_round": last, "rounds": final_round}
        if site in disconnected:
            lost[site]["disconnected_in_round"] = disconnected[site]
    return lost


def lost_site_text(site: str, info: dict) -> str:
    last, rounds = info.get("last_round"), info.get("rounds")
    when = (
        f"the last global model it scored was that of round {last}" + (f" of {rounds}" if rounds else "")
        if last is not None
        else "it scored no global model after round 1"
    )
    if info.get("disconnected_in_round") is not None:
        when += f"; the server stopped waiting for it in round {info['disconnected_in_round']}"
    return (
        f"{site} took part in the job but has no result in the cross-site evaluation: lost during the run ({when}); "
        "shown as missing, not as 0, and left out of every average"
    )


def _fmt(value: Optional[float]) -> str:
    return "missing" if value is None else f"{value:.4f}"


def _fmt_mm(value: Optional[float]) -> str:
    return "missing" if value is None else f"{value:.2f}"


def region_table(sites: Dict[str, Optional[dict]], average: Optional[dict]) -> List[str]:
    """Markdown rows of per-site TC / WT / ET / mean Dice (and HD95 in mm when there is any) and the case-weighted
    AVE."""
    rows = list(sites.items()) + [("AVE", average)]
    with_hd95 = any(r and HD95_METRICS[0] in r for _, r in rows)
    hd95_head = "".join(f" HD95 {r} (mm) |" for r in REGIONS) if with_hd95 else ""
    columns = 6 + (len(REGIONS) if with_hd95 else 0)
    lines = [f"| site | TC | WT | ET | mean |{hd95_head} cases |", "|---" * columns + "|"]
    for site, r in rows:
        values = [_fmt(r[k] if r else None) for k in DICE_COLUMNS]
        if with_hd95:
            values += [_fmt_mm(r.get(k) if r else None) for k in HD95_METRICS]
        lines.append(f"| {site} | " + " | ".join(values) + f" | {r[N_CASES] if r else '-'} |")
    return lines + presence_table(rows)


def presence_table(rows: List[tuple]) -> List[str]:
    """Markdown rows, below a region table, of the cases that hold each region, the Dice on those cases, and the
    cases where a region is in neither the reference nor the prediction (scored Dice 1 by the rule); nothing when the
    results do not say."""
    if not all(r is None or with_name(REGIONS[0]) in r for _, r in rows) or not any(r for _, r in rows):
        return []
    lines = [
        "",
        PRESENCE_NOTE,
        "",
        "| site | cases with TC / WT / ET | Dice on them: TC / WT / ET | in neither, Dice 1: TC / WT / ET |",
        "|---|---|---|---|",
    ]
    for site, r in rows:
        if r is None:
            lines.append(f"| {site} | missing | missing | missing |")
            continue
        held = " / ".join(str(r[with_name(g)]) for g in REGIONS)
        dice = " / ".join(
            "-" if r[metric_name(DICE_WITH, g)] is None else f"{r[metric_name(DICE_WITH, g)]:.4f}" for g in REGIONS
        )
        empty = " / ".join(str(r[empty_name(g)]) for g in REGIONS)
        lines.append(f"| {site} | {held} of {r[N_CASES]} | {dice} | {empty} |")
    return lines


def detection_table(sites: Dict[str, Optional[dict]], average: Optional[dict]) -> List[str]:
    """Markdown rows of per-site sensitivity and specificity per region and the case-weighted AVE (``-`` for a result
    without them); nothing when no result has them."""
    rows = list(sites.items()) + [("AVE", average)]
    if not any(r and SENSITIVITY_METRICS[0] in r for _, r in rows):
        return []
    head = "".join(f" sensitivity {g} |" for g in REGIONS) + "".join(f" specificity {g} |" for g in REGIONS)
    lines = ["Sensitivity / specificity:", "", f"| site |{head} cases |", "|---" * (len(DETECTION_COLUMNS) + 2) + "|"]
    for site, r in rows:
        values = [(_fmt(r[k]) if k in r else "-") if r else _fmt(None) for k in DETECTION_COLUMNS]
        lines.append(f"| {site} | " + " | ".join(values) + f" | {r[N_CASES] if r else '-'} |")
    return lines


PRESENCE_NOTE = (
    "A case without a region in its reference scores Dice 1 for that region when the model predicts none of it (and "
    "0 otherwise): the Dice on the cases that hold each region, and how many cases scored 1 by that rule:"
)


HD95_NOTE = (
    "HD95: 95th percentile Hausdorff distance in mm, measured by each site on its cases resampled to the model's "
    "voxel size; a region empty in both the prediction and the reference scores Dice 1 and HD95 0 mm, in one of "
    "them Dice 0 and HD95 373.13 mm."
)
DETECTION_NOTE = (
    "Sensitivity TP / (TP + FN) and specificity TN / (TN + FP) per region, over every voxel of the grid a site scores "
    "(as FeTS reports them); a region absent from the reference scores sensitivity 1 when the model predicts none of "
    "it, else 0."
)
FIGURE_TEXT = {
    "heatmap": ("mean Dice, model x site", ""),
    "curves": (
        "learning curves",
        "## Learning curves\n\nValidation mean Dice per round: each site's score of the global model it received "
        "(solid) and of its own model after local training (dashed), the server's case-weighted score of the "
        "global model (black), and each site's training loss.",
    ),
    "dice_boxes": (
        "per-case Dice per region",
        "## Per-case Dice\n\nDice of every case per region and model, all sites' cases together; "
        "the sites send these as numbers only, without case names.",
    ),
}


def figure_lines(figures: Dict[str, str], kind: str) -> List[str]:
    if kind not in figures:
        return []
    alt, text = FIGURE_TEXT[kind]
    return ([text, ""] if text else []) + [f"![{alt}]({figures[kind]})", ""]


def to_markdown(report: dict) -> str:
    cases = ", ".join(f"{s} {n if n else 'missing'}" for s, n in report["cases"].items())
    with_hd95 = any(row["average"] and HD95_METRICS[0] in row["average"] for row in report["models"])
    with_detection = any(row["average"] and SENSITIVITY_METRICS[0] in row["average"] for row in report["models"])
    figures = report.get("figures") or {}
    lines = ["# Cross-site evaluation", ""]
    if report["models"]:
        lines += [
            f"Split: {report['split']}; cases per site: {cases}. "
            "AVE is weighted by each site's number of cases: (sum of x_s n_s) / (sum of n_s)."
            + (f" {HD95_NOTE}" if with_hd95 else "")
            + (f" {DETECTION_NOTE}" if with_detection else ""),
            "",
        ]
    lines += [f"{report[k]}\n" for k in ("ended", "not_evaluated", "resume") if report.get(k)]
    lost = report.get("lost_sites") or {}
    if lost:
        lines += ["**Sites lost during the run:**", ""] + [f"- {lost_site_text(s, i)}" for s, i in lost.items()]
        lines.append("")
    for row in report["models"]:
        lines += [f"## {row['label']}", ""] + region_table(row["sites"], row["average"]) + [""]
        detection = detection_table(row["sites"], row["average"])
        lines += detection + ([""] if detection else [])
    if report["models"]:
        lines += ["## Mean Dice, model x site", "", "| model | " + " | ".join(report["sites"]) + " | AVE |"]
        lines.append("|---" * (len(report["sites"]) + 2) + "|")
    for row in report["models"]:
        cells = [_fmt(row["sites"][s][MEAN_DICE] if row["sites"][s] else None) for s in report["sites"]]
        lines.append(
            f"| {row['model']} | "
            + " | ".join(cells)
            + f" | {_fmt(row['average'][MEAN_DICE] if row['average'] else None)} |"
        )
    lines.append("")
    for kind in FIGURE_TEXT:
        lines += figure_lines(figures, kind)
    if report["warnings"]:
        lines += ["## Warnings", ""] + [f"- {w}" for w in report["warnings"]]
    return "\n".join(lines).rstrip("\n") + "\n"


def write_report(
    source: str, out_dir: Optional[str] = None, env: Optional[str] = None, failure: Optional[dict] = None
) -> dict:
    """Read a finished simulator workspace or downloaded job result; write report.md, report.json and the pictures.

    The learning curves come from the sites' TensorBoard events below ``source`` (a simulator workspace holds
    them) and from the server's selection history. An aborted job (the selection's ``aborted`` entry, else
    ``failure``, as :func:`fedbrats.evaluation.outcome.job_failure` gives it) is reported without cross-site
    results when its evaluation never ran. ``env``: where the job ran, for the command that resumes it.
    """
    results_path = find_file(source, RESULTS_FILE)
    selection_path = find_file(
        os.path.dirname(os.path.dirname(results_path)) if results_path else source, SELECTION_FILE
    )
    selection = json.load(open(selection_path)) if selection_path else None
    if failure and selection is not None and not selection.get("aborted"):
        selection["aborted"] = {k: failure.get(k) for k in ("round", "rounds_done", "planned", "reason")}
    if results_path is None and not (selection or {}).get("aborted"):
        raise FileNotFoundError(f"no {RESULTS_FILE} under {source}: did the job's cross-site evaluation finish?")
    results = {}
    if results_path:
        with open(results_path) as f:
            results = json.load(f)
    report = build_report(results, selection, env)
    found = results_path or selection_path
    report["source"] = os.path.abspath(found)
    report["curves"] = learning_curves(source if os.path.isdir(source) else None, selection)
    out_dir = out_dir or os.path.dirname(os.path.dirname(found))
    os.makedirs(out_dir, exist_ok=True)
    report["figures"] = write_figures(report, out_dir)
    write_json(os.path.join(out_dir, "report.json"), report)
    markdown = to_markdown(report)
    with open(os.path.join(out_dir, "report.md"), "w") as f:
        f.write(markdown)
    report["paths"] = [os.path.join(out_dir, n) for n in ("report.md", "report.json", *report["figures"].values())]
    report["markdown"] = markdown
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="simulator workspace, downloaded job result, or cross_val_results.json")
    parser.add_argument("--out", help="folder for report.md, report.json and the PNGs (default: next to the results)")


def run(args: argparse.Namespace) -> None:
    report = write_report(args.source, args.out)
    print(report["markdown"])
    for warning in report["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"report written to {', '.join(report['paths'])}")

"""Cross-site evaluation report: per-site Dice of every model and the case-weighted average."""

import argparse
import glob
import json
import os
import sys
from typing import Dict, List, Optional

from ..constants import MEAN_DICE, N_CASES, REGION_METRICS, REGIONS
from ..datalist import write_json
from ..fl.model_selector import SELECTION_FILE

RESULTS_FILE = "cross_val_results.json"
FINAL_GLOBAL, BEST_GLOBAL = "SRV_FL_global_model.pt", "SRV_best_FL_global_model.pt"


def find_file(path: str, name: str) -> Optional[str]:
    """``path`` itself, or the newest file called ``name`` below it."""
    if os.path.isfile(path):
        return path
    found = glob.glob(os.path.join(path, "**", name), recursive=True)
    return max(found, key=os.path.getmtime) if found else None


def site_result(metrics: object) -> Optional[Dict[str, float]]:
    """Region Dice and case count of one (model, site) result, or None if it is missing or incomplete."""
    if not isinstance(metrics, dict) or not all(isinstance(metrics.get(m), (int, float)) for m in REGION_METRICS):
        return None
    n = metrics.get(N_CASES)
    if not isinstance(n, int) or n <= 0:
        return None
    out = {r: float(metrics[m]) for r, m in zip(REGIONS, REGION_METRICS)}
    out["mean"] = float(metrics.get(MEAN_DICE, sum(out.values()) / len(REGIONS)))
    out[N_CASES] = n
    return out


def weighted_average(results: Dict[str, Optional[dict]]) -> Optional[dict]:
    """(sum of dice_s x n_s) / (sum of n_s) per region over the sites that have a result."""
    present = [r for r in results.values() if r is not None]
    total = sum(r[N_CASES] for r in present)
    if not total:
        return None
    out = {k: sum(r[k] * r[N_CASES] for r in present) / total for k in REGIONS + ("mean",)}
    out[N_CASES] = total
    return out


def model_label(model: str, final_round: Optional[int], best_round: Optional[int]) -> str:
    if model == FINAL_GLOBAL:
        return f"global model after {final_round} rounds" if final_round else "final global model"
    if model == BEST_GLOBAL:
        return (
            f"global best model (round {best_round}, selected in time)"
            if best_round is not None
            else "global best model"
        )
    return f"{model} best model (selected by {model}'s local validation)"


def build_report(results: dict, selection: Optional[dict] = None) -> dict:
    """Report data from ``{evaluating site: {model: metrics}}`` as written by FLARE's cross-site evaluation."""
    history = (selection or {}).get("history") or []
    site_models = {m for r in results.values() for m in r} - {FINAL_GLOBAL, BEST_GLOBAL}
    # a site whose every evaluation failed is absent from the results: find it from its model or its scores
    sites = sorted(set(results) | site_models | {s for h in history for s in h.get("sites", {})})
    models = [FINAL_GLOBAL, BEST_GLOBAL] + sorted(site_models)
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
                "sites": per_site,
                "average": weighted_average(per_site),
            }
        )
    cases = {s: max((r["sites"][s][N_CASES] for r in rows if r["sites"][s]), default=None) for s in sites}
    return {
        "split": ", ".join(sorted(splits)) or "unknown",
        "cases": cases,
        "sites": sites,
        "models": rows,
        "warnings": warnings,
    }


def _fmt(value: Optional[float]) -> str:
    return "missing" if value is None else f"{value:.4f}"


def region_table(sites: Dict[str, Optional[dict]], average: Optional[dict]) -> List[str]:
    """Markdown rows of per-site TC / WT / ET / mean Dice and the case-weighted AVE."""
    lines = ["| site | TC | WT | ET | mean | cases |", "|---|---|---|---|---|---|"]
    for site, r in list(sites.items()) + [("AVE", average)]:
        values = [_fmt(r[k] if r else None) for k in REGIONS + ("mean",)]
        lines.append(f"| {site} | " + " | ".join(values) + f" | {r[N_CASES] if r else '-'} |")
    return lines


def to_markdown(report: dict) -> str:
    cases = ", ".join(f"{s} {n if n else 'missing'}" for s, n in report["cases"].items())
    lines = [
        "# Cross-site evaluation",
        "",
        f"Split: {report['split']}; cases per site: {cases}. "
        "AVE is weighted by each site's number of cases: (sum of dice_s x n_s) / (sum of n_s).",
        "",
    ]
    for row in report["models"]:
        lines += [f"## {row['label']}", ""] + region_table(row["sites"], row["average"]) + [""]
    lines += ["## Mean Dice, model x site", "", "| model | " + " | ".join(report["sites"]) + " | AVE |"]
    lines.append("|---" * (len(report["sites"]) + 2) + "|")
    for row in report["models"]:
        cells = [_fmt(row["sites"][s]["mean"] if row["sites"][s] else None) for s in report["sites"]]
        lines.append(
            f"| {row['model']} | "
            + " | ".join(cells)
            + f" | {_fmt(row['average']['mean'] if row['average'] else None)} |"
        )
    if report["warnings"]:
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in report["warnings"]]
    return "\n".join(lines) + "\n"


def write_report(source: str, out_dir: Optional[str] = None) -> dict:
    """Read a finished simulator workspace or downloaded job result and write report.md / report.json."""
    results_path = find_file(source, RESULTS_FILE)
    if results_path is None:
        raise FileNotFoundError(f"no {RESULTS_FILE} under {source}: did the job's cross-site evaluation finish?")
    with open(results_path) as f:
        results = json.load(f)
    selection_path = find_file(os.path.dirname(os.path.dirname(results_path)), SELECTION_FILE)
    selection = json.load(open(selection_path)) if selection_path else None
    report = build_report(results, selection)
    report["source"] = os.path.abspath(results_path)
    out_dir = out_dir or os.path.dirname(os.path.dirname(results_path))
    os.makedirs(out_dir, exist_ok=True)
    write_json(os.path.join(out_dir, "report.json"), report)
    markdown = to_markdown(report)
    with open(os.path.join(out_dir, "report.md"), "w") as f:
        f.write(markdown)
    report["paths"] = [os.path.join(out_dir, "report.md"), os.path.join(out_dir, "report.json")]
    report["markdown"] = markdown
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="simulator workspace, downloaded job result, or cross_val_results.json")
    parser.add_argument("--out", help="folder for report.md and report.json (default: next to the results)")


def run(args: argparse.Namespace) -> None:
    report = write_report(args.source, args.out)
    print(report["markdown"])
    for warning in report["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"report written to {', '.join(report['paths'])}")

"""``fedbrats evaluate``: Dice, HD95 (mm), sensitivity and specificity per case and region of predicted label maps
against the references.

Predictions are ``<case>_seg.nii.gz`` files in one folder (what ``fedbrats infer`` writes); references are the
labels of a datalist split or the ``<case>_seg.nii.gz`` files anywhere below a folder. Both are compared on the
reference's own grid, with the spacing of its affine. The labels of a case in the MSD Task01 layout, its reference and
its prediction, are MSD's {0, 1, 2, 3}; all others BraTS's {0, 1, 2, 4}. Writes ``evaluation.csv`` (one row per case),
``summary.md`` and ``summary.json`` (mean, std, median, quartiles per metric and region).
"""

import argparse
import csv
import glob
import os
import time
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from monai.transforms import LoadImage

from fedbrats.evaluation.infer import SUFFIX
from fedbrats.evaluation.regions import label_regions
from fedbrats.prepare.check_data import find_datalist
from fedbrats.runtime.constants import (
    BRATS_FORMAT,
    DICE,
    HD95,
    REGIONS,
    SCORE_METRICS,
    SENSITIVITY,
    SPECIFICITY,
    SPLITS,
    metric_name,
)
from fedbrats.runtime.data import guards
from fedbrats.runtime.data.datalist import case_name, load_datalist, resolve_path, write_json
from fedbrats.runtime.data.msd import entry_format, label_values, to_brats_labels
from fedbrats.runtime.errors import BratsDataError
from fedbrats.runtime.metrics import HD95_MAX_MM, case_metrics

PREFIX = "[evaluate]"
CSV_FILE, SUMMARY_MD, SUMMARY_JSON = "evaluation.csv", "summary.md", "summary.json"
CONVENTIONS = (
    "Regions TC (labels 1+4), WT (1+2+4), ET (4); in MSD Task01 labels 2+3, 1+2+3 and 3. "
    "Both masks of a region empty: Dice 1, HD95 0 mm; one empty: "
    f"Dice 0, HD95 {HD95_MAX_MM} mm (the diagonal of the 240 x 240 x 155 mm BraTS volume). HD95: the larger of the "
    "two directed 95th percentiles of the distances between the surfaces, in mm on the reference's grid. "
    "Sensitivity TP / (TP + FN) and specificity TN / (TN + FP) over every voxel of the reference's grid; a region "
    "empty in the reference: sensitivity 1 when the prediction is empty too, else 0 (CaPTk's BraTS rule). "
    "std: population (ddof 0)."
)


COLUMNS = SCORE_METRICS
"""Scores of a case, in the order of the CSV's columns."""
STATISTICS = ("mean", "std", "median", "25quantile", "75quantile")


def case_scores(pred_labels: np.ndarray, ref_labels: np.ndarray, spacing: Sequence[float]) -> Dict[str, float]:
    """``dice_tc`` ... ``specificity_et`` of a predicted label map against the reference on one grid, with the sites'
    own region scores (:func:`fedbrats.runtime.metrics.case_metrics`)."""
    scores = case_metrics(label_regions(pred_labels), label_regions(ref_labels), spacing)
    return {c: scores[c] for c in COLUMNS}


def summary(rows: Sequence[Dict[str, float]]) -> Dict[str, Dict[str, float]]:
    """Mean, standard deviation (population, ddof 0), median and quartiles of every column over the cases."""
    out = {}
    for column in COLUMNS:
        values = np.array([r[column] for r in rows], dtype=np.float64)
        q25, median, q75 = np.percentile(values, [25, 50, 75])
        out[column] = {
            "mean": float(values.mean()),
            "std": float(values.std()),
            "median": float(median),
            "25quantile": float(q25),
            "75quantile": float(q75),
        }
    return out


def datalist_references(datalist: str, data_root: str, split: str) -> Tuple[Dict[str, str], Dict[str, str]]:
    """(case -> reference label file, case -> layout of its labels) of a datalist split."""
    refs, formats = {}, {}
    for entry in load_datalist(datalist, split):
        case = case_name(entry)
        refs[case] = resolve_path(entry["label"], data_root, case)
        formats[case] = entry_format(entry)
    return refs, formats


def folder_references(folder: str) -> Dict[str, str]:
    """Case -> ``<case>_seg.nii.gz`` anywhere below ``folder``."""
    if not os.path.isdir(folder):
        raise BratsDataError("reference folder not found", path=folder)
    refs = {}
    for path in sorted(glob.glob(os.path.join(glob.escape(folder), "**", f"*{SUFFIX}"), recursive=True)):
        case = os.path.basename(path)[: -len(SUFFIX)]
        if case in refs:
            raise BratsDataError(f"two reference labels, also {refs[case]}", case=case, path=path)
        refs[case] = path
    if not refs:
        raise BratsDataError(f"no reference labels *{SUFFIX} below this folder", path=folder)
    return refs


def pair_cases(references: Dict[str, str], predictions: str) -> List[Tuple[str, str, str]]:
    """(case, prediction, reference) of every reference case; refuses a missing prediction."""
    if not os.path.isdir(predictions):
        raise BratsDataError("predictions folder not found", path=predictions)
    pairs = [(case, os.path.join(predictions, f"{case}{SUFFIX}"), ref) for case, ref in sorted(references.items())]
    missing = [p for p in pairs if not os.path.isfile(p[1])]
    if missing:
        names = ", ".join(c for c, _, _ in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise BratsDataError(f"no prediction for {len(missing)} of {len(pairs)} cases ({names})", path=missing[0][1])
    return pairs


def read_labels(loader: LoadImage, case: str, path: str, data_format: str = BRATS_FORMAT):
    """A label map in BraTS values and its affine, refused with the case and file if unreadable, not 3D or with
    values outside its layout's."""
    try:
        image = loader(path)
    except Exception as e:
        raise BratsDataError(f"cannot read NIfTI ({type(e).__name__}: {e})", case=case, path=path) from None
    if image.ndim != 3:
        raise BratsDataError(f"expected a 3D label map, got shape {tuple(image.shape)}", case=case, path=path)
    volume = image.numpy()
    labels = label_values(data_format)
    for problem in (guards.label_problem(volume, labels), guards.geometry_problem("label", image.affine)):
        if problem:
            raise BratsDataError(problem, case=case, path=path)
    return (volume if data_format == BRATS_FORMAT else to_brats_labels(volume)), image.affine.numpy()


def evaluate_case(
    loader: LoadImage, case: str, prediction: str, reference: str, data_format: str = BRATS_FORMAT
) -> Dict[str, object]:
    """Scores of one case; refuses a prediction that is not on the reference's grid."""
    ref, ref_affine = read_labels(loader, case, reference, data_format)
    pred, pred_affine = read_labels(loader, case, prediction, data_format)
    if pred.shape != ref.shape:
        message = f"prediction has shape {pred.shape}, the reference {ref.shape}"
        raise BratsDataError(message, case=case, path=prediction)
    problem = guards.grid_problem("prediction", pred_affine, "reference", ref_affine, ref.shape)
    if problem:
        raise BratsDataError(problem, case=case, path=prediction)
    return {"case": case, **case_scores(pred, ref, guards.voxel_sizes(ref_affine))}


def to_markdown(stats: Dict[str, Dict[str, float]], n_cases: int, source: str) -> str:
    lines = [
        "# Segmentation evaluation",
        "",
        f"{n_cases} cases; predictions {source}.",
        "",
        CONVENTIONS,
        "",
        "| metric | region | " + " | ".join(STATISTICS) + " |",
        "|---|---|" + "---|" * len(STATISTICS),
    ]
    for metric, label, fmt in (
        (DICE, "Dice", "{:.4f}"),
        (HD95, "HD95 (mm)", "{:.2f}"),
        (SENSITIVITY, "Sensitivity", "{:.4f}"),
        (SPECIFICITY, "Specificity", "{:.4f}"),
    ):
        for region in REGIONS:
            values = stats[metric_name(metric, region)]
            cells = " | ".join(fmt.format(values[s]) for s in STATISTICS)
            lines.append(f"| {label} | {region} | {cells} |")
    return "\n".join(lines) + "\n"


def evaluate_folder(
    predictions: str, references: Dict[str, str], out: str, formats: Optional[Mapping[str, str]] = None
) -> dict:
    """Score every case, write the CSV and the summaries; returns the summary. ``formats`` gives the layout of a
    case's labels (BraTS when not given)."""
    pairs = pair_cases(references, predictions)
    loader = LoadImage(image_only=True)
    rows, start = [], time.time()
    for i, (case, prediction, reference) in enumerate(pairs, 1):
        rows.append(evaluate_case(loader, case, prediction, reference, (formats or {}).get(case, BRATS_FORMAT)))
        scores = " ".join(f"{r} {rows[-1][metric_name(DICE, r)]:.3f}" for r in REGIONS)
        print(f"{PREFIX} {i}/{len(pairs)} {case}: Dice {scores}", flush=True)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, CSV_FILE), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=("case",) + COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    stats = summary(rows)
    result = {
        "n_cases": len(rows),
        "predictions": os.path.abspath(predictions),
        "conventions": CONVENTIONS,
        "hd95_max_mm": HD95_MAX_MM,
        "summary": stats,
        "cases": rows,
    }
    write_json(os.path.join(out, SUMMARY_JSON), result)
    markdown = to_markdown(stats, len(rows), result["predictions"])
    with open(os.path.join(out, SUMMARY_MD), "w") as f:
        f.write(markdown)
    print(markdown)
    print(
        f"{PREFIX} {len(rows)} cases in {time.time() - start:.0f} s; "
        f"{', '.join(os.path.join(os.path.abspath(out), n) for n in (CSV_FILE, SUMMARY_MD, SUMMARY_JSON))}"
    )
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("predictions", help="the folder of <case>_seg.nii.gz to score (fedbrats infer --out)")
    refs = parser.add_mutually_exclusive_group(required=True)
    refs.add_argument("--datalist", help="datalist whose --split labels are the references (with --data-root)")
    refs.add_argument("--labels", help="folder holding the reference <case>_seg.nii.gz files (searched below)")
    parser.add_argument("--data-root", help="data root of --datalist")
    parser.add_argument("--split", default="testing", choices=SPLITS, help="datalist split (testing)")
    parser.add_argument("--out", help="folder for the CSV and summaries (default: the predictions folder)")


def run(args: argparse.Namespace) -> None:
    if args.datalist and not args.data_root:
        raise SystemExit("fedbrats evaluate: --datalist needs --data-root")
    formats = {}
    if args.datalist:
        datalist = find_datalist(args.datalist, args.data_root)
        references, formats = datalist_references(datalist, args.data_root, args.split)
    else:
        references = folder_references(args.labels)
    evaluate_folder(args.predictions, references, args.out or args.predictions, formats)

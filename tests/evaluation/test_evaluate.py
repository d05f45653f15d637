import csv
import json
import os

import nibabel as nib
import numpy as np
import pytest
from builders import LPS_1_5MM, shifted, write_case

from fedbrats.cli import main
from fedbrats.runtime.metrics import HD95_MAX_MM


def references_and_predictions(tmp_path):
    """Two reference cases; the first predicted exactly, the second with its enhancing tumour called core."""
    refs, preds = tmp_path / "refs", tmp_path / "preds"
    preds.mkdir()
    for i, case in enumerate(("Case_A", "Case_B")):
        entry = write_case(str(refs), case, shape=(24, 24, 24), seed=i, affine=LPS_1_5MM)
        label = nib.load(str(refs / entry["label"]))
        data = np.asarray(label.dataobj).copy()
        if case == "Case_B":
            data[data == 4] = 1
        nib.save(nib.Nifti1Image(data, label.affine), str(preds / f"{case}_seg.nii.gz"))
    return refs, preds


def test_evaluate_writes_per_case_scores_and_a_summary(tmp_path):
    refs, preds = references_and_predictions(tmp_path)
    out = tmp_path / "eval"
    assert main(["evaluate", str(preds), "--labels", str(refs), "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out / "evaluation.csv")))
    assert [r["case"] for r in rows] == ["Case_A", "Case_B"]
    assert all(
        float(rows[0][f"dice_{r.lower()}"]) == 1.0 and float(rows[0][f"hd95_{r.lower()}"]) == 0.0
        for r in ("TC", "WT", "ET")
    )
    assert float(rows[1]["dice_tc"]) == 1.0 and float(rows[1]["dice_wt"]) == 1.0
    assert float(rows[1]["dice_et"]) == 0.0 and float(rows[1]["hd95_et"]) == HD95_MAX_MM
    assert list(rows[0])[-6:] == [f"{m}_{r}" for m in ("sensitivity", "specificity") for r in ("tc", "wt", "et")]
    assert all(float(rows[0][f"{m}_{r}"]) == 1.0 for m in ("sensitivity", "specificity") for r in ("tc", "wt", "et"))
    # Case_B's enhancing tumour is all missed (sensitivity 0) and nothing is called ET outside it (specificity 1)
    assert (float(rows[1]["sensitivity_et"]), float(rows[1]["specificity_et"])) == (0.0, 1.0)
    assert (float(rows[1]["sensitivity_tc"]), float(rows[1]["specificity_tc"])) == (1.0, 1.0)
    summary = json.load(open(out / "summary.json"))
    assert summary["n_cases"] == 2
    assert summary["summary"]["dice_et"]["mean"] == 0.5
    assert summary["summary"]["hd95_et"]["median"] == pytest.approx(HD95_MAX_MM / 2)
    assert summary["summary"]["sensitivity_et"]["mean"] == 0.5 and summary["summary"]["specificity_et"]["std"] == 0.0
    assert summary["cases"][1]["sensitivity_et"] == 0.0
    markdown = (out / "summary.md").read_text()
    assert "| HD95 (mm) | ET |" in markdown
    assert "| Sensitivity | ET | 0.5000 | 0.5000 | 0.5000 | 0.2500 | 0.7500 |" in markdown
    assert "| Specificity | ET | 1.0000 | 0.0000 | 1.0000 | 1.0000 | 1.0000 |" in markdown


def test_a_prediction_off_the_reference_grid_or_missing_is_refused(tmp_path, capsys):
    refs, preds = references_and_predictions(tmp_path)
    path = preds / "Case_B_seg.nii.gz"
    moved = nib.load(str(path))
    nib.save(nib.Nifti1Image(np.asarray(moved.dataobj), shifted(3.0, affine=LPS_1_5MM)), str(path))
    assert main(["evaluate", str(preds), "--labels", str(refs)]) == 2
    err = capsys.readouterr().err
    assert f"case Case_B, file {path}: prediction is not on the voxel grid of reference" in err
    os.remove(path)
    assert main(["evaluate", str(preds), "--labels", str(refs)]) == 2
    assert f"file {path}: no prediction for 1 of 2 cases (Case_B)" in capsys.readouterr().err
    assert not os.path.exists(preds / "evaluation.csv")

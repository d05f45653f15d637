import json
import os

import nibabel as nib
import numpy as np
import pytest
from builders import LPS_1_5MM, TINY_TRAINING, write_case, write_fl_model

from fedbrats.cli import main

TRAINING = {**TINY_TRAINING, "pixdim": 2.0}
"""A tiny model that works on 2 mm voxels: the case is resampled, segmented and mapped back."""


def test_infer_writes_brats_labels_on_the_grid_of_the_input(tmp_path, capsys):
    model = write_fl_model(str(tmp_path / "job"), TRAINING)
    entry = write_case(str(tmp_path / "data"), "Case_LPS", shape=(36, 32, 28), affine=LPS_1_5MM)
    case_dir = str(tmp_path / "data" / os.path.dirname(entry["label"]))
    out = tmp_path / "pred"
    assert main(["infer", model, "--case-dir", case_dir, "--out", str(out), "--device", "cpu"]) == 0
    written = nib.load(str(out / "Case_LPS_seg.nii.gz"))
    t1c = nib.load(str(tmp_path / "data" / entry["image"][0]))
    assert written.shape == t1c.shape == (36, 32, 28)
    np.testing.assert_allclose(written.affine, t1c.affine)
    assert set(np.unique(np.asarray(written.dataobj)).tolist()) <= {0, 1, 2, 4}
    printed = capsys.readouterr().out
    assert "final global model" in printed and "config_fed_client.json" in printed
    assert "1/1 Case_LPS:" in printed and f"written to {out}" in printed


@pytest.mark.parametrize(
    "logits, label", [((-9.0, 9.0, -9.0), 2), ((9.0, 9.0, -9.0), 1), ((9.0, 9.0, 9.0), 4), ((-9.0, -9.0, -9.0), 0)]
)
def test_infer_writes_the_segmentation_the_model_gives(tmp_path, logits, label):
    """A model whose output is the same region logits (TC, WT, ET) at every voxel: every voxel of the case's grid gets
    the label of those regions, WT 2, TC 1 over it, ET 4 over both."""
    model = write_fl_model(str(tmp_path / "job"), TRAINING, final_logits=logits)
    entry = write_case(str(tmp_path / "data"), "Case_LPS", shape=(36, 32, 28), affine=LPS_1_5MM)
    case_dir = str(tmp_path / "data" / os.path.dirname(entry["label"]))
    assert main(["infer", model, "--case-dir", case_dir, "--out", str(tmp_path / "pred"), "--device", "cpu"]) == 0
    written = np.asarray(nib.load(str(tmp_path / "pred" / "Case_LPS_seg.nii.gz")).dataobj)
    assert written.shape == (36, 32, 28) and set(np.unique(written).tolist()) == {label}


def test_infer_then_evaluate_a_datalist_split(tiny_site, tmp_path, capsys):
    root, datalist = tiny_site
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps(TRAINING))
    model = write_fl_model(str(tmp_path / "job"), TRAINING, name="best_FL_global_model.pt")
    out = str(tmp_path / "pred")
    common = ["--datalist", datalist, "--data-root", root, "--split", "training"]
    assert main(["infer", model, "--settings", str(settings), "--out", out] + common) == 0
    assert sorted(os.listdir(out)) == ["Case_001_seg.nii.gz", "Case_002_seg.nii.gz"]
    assert main(["evaluate", out] + common) == 0
    summary = json.load(open(os.path.join(out, "summary.json")))
    assert summary["n_cases"] == 2 and [c["case"] for c in summary["cases"]] == ["Case_001", "Case_002"]
    assert "2 segmentation(s)" in capsys.readouterr().out


def test_bad_input_names_the_case_and_the_file(tmp_path, capsys):
    model = write_fl_model(str(tmp_path / "job"), TRAINING)
    entry = write_case(str(tmp_path / "data"), "Case_X", shape=(32, 32, 32))
    flair = tmp_path / "data" / entry["image"][3]
    os.remove(flair)
    case_dir = str(flair.parent)
    assert main(["infer", model, "--case-dir", case_dir, "--out", str(tmp_path / "o")]) == 2
    assert f"case Case_X, file {case_dir}: no file named *_flair.nii.gz" in capsys.readouterr().err

    t1c = str(tmp_path / "data" / entry["image"][0])
    nib.save(nib.Nifti1Image(np.full((32, 32, 32), np.nan, np.float32), np.eye(4)), str(flair))
    images = [str(tmp_path / "data" / p) for p in entry["image"]]
    assert main(["infer", model, "--images", *images, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"case Case_X, file {flair}: flair has 32768 non-finite voxel(s)" in err and t1c not in err

    bare = tmp_path / "bare.pt"
    os.rename(model, bare)
    assert main(["infer", str(bare), "--images", *images, "--out", str(tmp_path / "o")]) == 2
    assert "no training settings found" in capsys.readouterr().err

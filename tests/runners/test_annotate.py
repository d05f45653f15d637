"""``fedbrats annotate``: clicks from the command line or a file (voxels or mm), the case's and the start's checks,
one clear error for each bad input, and the corrected labels written on the case's grid."""

import argparse
import json
import os

import nibabel as nib
import numpy as np
import pytest
from annotate_helpers import UNLABELLED, StandInAnnotator, site_with_unlabelled_case
from builders import LPS_1_5MM, TINY_TRAINING, write_case

from fedbrats.cli import main
from fedbrats.evaluation.annotator import Annotator
from fedbrats.runners import annotate, annotation
from fedbrats.runtime.errors import BratsDataError
from fedbrats.runtime.settings import TrainSettings

CASE = "Case_A"


@pytest.fixture
def stand_in(monkeypatch):
    monkeypatch.setattr(annotate, "open_annotator", lambda args: StandInAnnotator())


@pytest.fixture
def case_files(tmp_path):
    """The four modality files of a case on a non-RAS grid of 1.5 mm voxels."""
    entry = write_case(str(tmp_path), CASE, affine=LPS_1_5MM)
    return [str(tmp_path / p) for p in entry["image"]]


def arguments(images, *extra):
    parser = argparse.ArgumentParser()
    annotate.add_arguments(parser)
    return parser.parse_args(["--model", "m.pt", "--images", *images, *extra])


def test_a_click_is_region_sign_and_three_numbers():
    assert annotation.parse_click_text("TC:+:1,2,3") == ("tc", True, (1.0, 2.0, 3.0))
    assert annotation.parse_click_text("et:-:-4.5, 0 ,7") == ("et", False, (-4.5, 0.0, 7.0))


@pytest.mark.parametrize(
    "text, says",
    [
        ("XX:+:1,2,3", "unknown region 'XX' in click 'XX:+:1,2,3'; valid: TC, WT, ET"),
        ("TC:*:1,2,3", "expected + or -"),
        ("TC:+:1,2", "needs three numbers"),
        ("TC:+:a,b,c", "needs three numbers"),
        ("TC:+", "is not REGION:+|-:A,B,C"),
    ],
)
def test_a_malformed_click_is_refused_with_what_is_wrong(text, says):
    with pytest.raises(BratsDataError) as error:
        annotation.parse_click_text(text)
    assert says in str(error.value)


def test_world_coordinates_map_to_the_voxel_through_the_affine():
    world = nib.affines.apply_affine(LPS_1_5MM, [3, 4, 5]) + [0.4, -0.3, 0.2]
    assert annotation.world_to_voxel(world, LPS_1_5MM) == (3, 4, 5)


def test_clicks_from_voxels_mm_and_a_file_all_on_the_cases_grid(case_files, tmp_path):
    clicks_file = tmp_path / "clicks.json"
    x, y, z = nib.affines.apply_affine(LPS_1_5MM, [7, 8, 9])
    clicks_file.write_text(
        json.dumps(
            [
                {"region": "WT", "positive": False, "voxel": [1, 2, 3]},
                {"region": "tc", "positive": True, "world": [x, y, z]},
            ]
        )
    )
    world = nib.affines.apply_affine(LPS_1_5MM, [10, 11, 12])
    args = arguments(
        case_files,
        "--click",
        "ET:+:16,16,16",
        "--click-world",
        f"TC:-:{','.join(map(str, world))}",
        "--clicks",
        str(clicks_file),
    )
    case = annotate.collect_case(args)
    shape, affine = annotation.grid_of(case)
    clicks = annotate.collect_clicks(args, case, shape, affine)
    assert [(c.region, c.positive, c.position) for c in clicks] == [
        ("et", True, (16, 16, 16)),
        ("tc", False, (10, 11, 12)),
        ("wt", False, (1, 2, 3)),
        ("tc", True, (7, 8, 9)),
    ]


def test_a_click_outside_the_volume_names_the_case_the_file_and_the_shape(case_files):
    args = arguments(case_files, "--click", "TC:+:1,2,32")
    case = annotate.collect_case(args)
    with pytest.raises(BratsDataError) as error:
        annotate.collect_clicks(args, case, *annotation.grid_of(case))
    assert str(error.value) == (
        f"case {CASE}, file {case_files[0]}: click 'TC:+:1,2,32' at voxel (1, 2, 32) lies outside the volume of "
        "shape (32, 32, 32)"
    )


@pytest.mark.parametrize(
    "item",
    [{"region": "tc", "voxel": [1, 2, 3]}, {"region": "tc", "positive": True, "voxel": [1, 2]}, [1, 2, 3]],
    ids=["no sign", "two numbers", "not an object"],
)
def test_a_malformed_click_of_a_file_is_refused(case_files, tmp_path, item):
    path = tmp_path / "clicks.json"
    path.write_text(json.dumps([item]))
    with pytest.raises(BratsDataError, match="click 0 must be"):
        annotation.read_clicks_file(str(path), np.eye(4))


def test_writes_the_corrected_labels_on_the_cases_grid_and_never_overwrites_without_force(
    case_files, tmp_path, stand_in, capsys
):
    out = str(tmp_path / "out" / f"{CASE}_seg.nii.gz")
    args = arguments(case_files, "--click", "TC:+:16,16,16", "--click", "ET:+:8,8,8", "--out", out)
    assert annotate.annotate(args) == out
    written = nib.load(out)
    assert np.allclose(written.affine, LPS_1_5MM) and written.get_data_dtype() == np.uint8
    labels = np.asarray(written.dataobj)
    assert labels[16, 16, 16] == 1 and labels[8, 8, 8] == 4 and labels[0, 0, 0] == 0
    assert f"{CASE}: 2 click(s), label 1: " in capsys.readouterr().out
    with pytest.raises(BratsDataError, match="output exists; --force overwrites it"):
        annotate.annotate(args)
    annotate.annotate(arguments(case_files, "--click", "WT:+:4,4,4", "--out", out, "--force"))
    assert np.asarray(nib.load(out).dataobj)[4, 4, 4] == 2


def test_a_starting_segmentation_is_corrected(case_files, tmp_path, stand_in):
    start = np.zeros((32, 32, 32), np.uint8)
    start[20:, 20:, 20:] = 2
    nib.save(nib.Nifti1Image(start, LPS_1_5MM), str(tmp_path / "start.nii.gz"))
    out = str(tmp_path / "seg.nii.gz")
    annotate.annotate(
        arguments(case_files, "--start", str(tmp_path / "start.nii.gz"), "--click", "WT:-:25,25,25", "--out", out)
    )
    labels = np.asarray(nib.load(out).dataobj)
    assert labels[25, 25, 25] == 0 and labels[30, 30, 30] == 2


@pytest.mark.parametrize(
    "volume, says",
    [
        (
            np.zeros((32, 32, 31), np.uint8),
            "starting segmentation has shape (32, 32, 31), the case's grid (32, 32, 32)",
        ),
        (np.full((32, 32, 32), 3, np.uint8), "label values [3] outside [0, 1, 2, 4]"),
    ],
    ids=["shape", "labels"],
)
def test_a_start_off_the_grid_or_with_other_labels_is_refused(case_files, tmp_path, volume, says):
    path = str(tmp_path / "start.nii.gz")
    nib.save(nib.Nifti1Image(volume, LPS_1_5MM), path)
    case = annotate.collect_case(arguments(case_files))
    with pytest.raises(BratsDataError) as error:
        annotation.read_start(path, case, *annotation.grid_of(case))
    assert str(error.value) == f"case {CASE}, file {path}: {says}"


def test_a_missing_or_corrupt_image_is_refused_naming_the_case_and_the_file(case_files, tmp_path, stand_in):
    out = str(tmp_path / "seg.nii.gz")
    os.remove(case_files[2])
    with pytest.raises(BratsDataError, match=f"case {CASE}, file {case_files[2]}: file not found"):
        annotate.annotate(arguments(case_files, "--click", "TC:+:1,1,1", "--out", out))
    with open(case_files[2], "wb") as f:
        f.write(b"not a NIfTI")
    with pytest.raises(BratsDataError, match=f"case {CASE}, file {case_files[2]}: cannot read NIfTI"):
        annotate.annotate(arguments(case_files, "--click", "TC:+:1,1,1", "--out", out))
    assert not os.path.exists(out)


def test_a_datalist_case_and_the_commands_one_line_errors(tmp_path, stand_in, capsys):
    datalist = site_with_unlabelled_case(tmp_path / "data")
    base = ["annotate", "--model", "m.pt", "--datalist", datalist, "--data-root", str(tmp_path / "data")]
    out = str(tmp_path / "seg.nii.gz")
    assert main([*base, "--case", UNLABELLED, "--click", "WT:+:16,16,16", "--out", out]) == 0
    assert np.asarray(nib.load(out).dataobj)[16, 16, 16] == 2
    assert main([*base, "--case", UNLABELLED, "--click", "NCR:+:16,16,16", "--out", out, "--force"]) == 2
    assert capsys.readouterr().err.strip().endswith("unknown region 'NCR' in click 'NCR:+:16,16,16'; valid: TC, WT, ET")
    assert main([*base, "--case", "Case_404", "--click", "WT:+:1,1,1", "--out", out, "--force"]) == 2
    assert "case Case_404, file " in capsys.readouterr().err


def test_the_interactive_model_follows_the_clicks(case_files, tmp_path, monkeypatch):
    monkeypatch.setattr(
        annotate, "open_annotator", lambda args: Annotator.untrained(TrainSettings.from_dict(TINY_TRAINING))
    )
    out = str(tmp_path / "seg.nii.gz")
    annotate.annotate(arguments(case_files, "--click", "ET:+:16,16,16", "--click", "WT:-:3,3,3", "--out", out))
    labels = np.asarray(nib.load(out).dataobj)
    assert labels.shape == (32, 32, 32) and labels[16, 16, 16] == 4 and labels[3, 3, 3] == 0

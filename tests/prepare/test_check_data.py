"""``fedbrats check-data``: every problem of a datalist in one pass, exit code 2 when there is any."""

import json
import os

import numpy as np
from builders import rewrite_volume, shifted, tumour_case, write_case

from fedbrats.cli import main


def write_datalist(root, splits, name="datalist.json"):
    path = os.path.join(root, name)
    with open(path, "w") as f:
        json.dump(splits, f)
    return path


def check(root, datalist, *splits):
    return main(["check-data", "--data-root", root, "--datalist", datalist] + (["--splits", *splits] if splits else []))


def test_lists_every_bad_case_and_exits_2(tmp_path, capsys):
    root = str(tmp_path)
    good = write_case(root, "Case_Good", seed=1)
    nan = write_case(root, "Case_NaN", seed=2)
    images, _ = tumour_case(seed=2)
    images[0][10, 11, 12] = np.nan
    rewrite_volume(root, nan, "t1ce", images[0])
    moved = write_case(root, "Case_Moved", seed=3)
    rewrite_volume(root, moved, "t1", affine=shifted(40.0))
    datalist = write_datalist(root, {"training": [good, nan], "validation": [moved]})

    assert check(root, datalist, "training", "validation") == 2
    out = capsys.readouterr().out.splitlines()
    assert "[check-data] training 1/2 Case_Good: ok" in out
    assert "[check-data] training 2/2 Case_NaN: 1 problem" in out
    assert "[check-data] validation 1/1 Case_Moved: 1 problem" in out
    problems = out[out.index("[check-data] problems:") + 1 : -1]
    assert len(problems) == 2
    assert problems[0].startswith("case Case_NaN, file ")
    assert "Case_NaN_t1ce.nii.gz: t1ce has 1 non-finite" in problems[0]
    assert problems[1].startswith("case Case_Moved, file ")
    assert "Case_Moved_t1.nii.gz: t1 is not on the voxel grid of t1ce" in problems[1]
    assert out[-1].startswith("[check-data] 2 problems in 2 of 3 cases (training 2, validation 1) of ")


def test_a_clean_datalist_exits_0(tiny_site, capsys):
    root, datalist = tiny_site
    assert check(root, datalist) == 0
    out = capsys.readouterr().out.splitlines()
    assert len([line for line in out if line.endswith(": ok")]) == 4
    assert "[check-data] problems:" not in out
    assert out[-1].startswith("[check-data] 0 problems in 0 of 4 cases (training 2, validation 1, testing 1) of ")


def test_datalist_level_problems_are_listed_per_entry_and_the_check_goes_on(tmp_path, capsys):
    root = str(tmp_path / "data")
    gone = write_case(root, "Case_Gone", seed=1)
    os.remove(os.path.join(root, gone["image"][2]))
    rewrite_volume(root, gone, "flair", np.zeros((32, 32, 32), np.float32))
    escape = write_case(root, "Case_Out", seed=2)
    escape = dict(escape, label="../elsewhere/Case_Out/Case_Out_seg.nii.gz")
    malformed = {"image": ["only_one.nii.gz"], "label": "HGG/Case_Odd/Case_Odd_seg.nii.gz"}
    good = write_case(root, "Case_Fine", seed=3)
    datalist = write_datalist(root, {"training": [gone, escape, malformed], "validation": [good], "testing": []})

    assert check(root, datalist) == 2
    out = capsys.readouterr().out.splitlines()
    problems = out[out.index("[check-data] problems:") + 1 : -1]
    assert len(problems) == 5, problems
    assert problems[0].endswith("Case_Gone_t2.nii.gz: file not found") and problems[0].startswith("case Case_Gone")
    assert problems[1].startswith("case Case_Gone") and "flair is constant (every voxel is 0)" in problems[1]
    outside = "../elsewhere/Case_Out/Case_Out_seg.nii.gz"
    assert problems[2] == f"case Case_Out, file {outside}: path escapes the data root {os.path.realpath(root)}"
    assert problems[3].startswith(f"case Case_Odd, file {datalist}: entry 2 of 'training' must be")
    assert problems[4] == f"file {datalist}: datalist split 'testing' is empty"
    assert "[check-data] validation 1/1 Case_Fine: ok" in out
    assert out[-1].startswith("[check-data] 5 problems in 3 of 4 cases (training 3, validation 1) of ")


def test_missing_datalist_and_data_root(tmp_path, capsys):
    assert check(str(tmp_path), str(tmp_path / "none.json")) == 2
    assert check(str(tmp_path / "no_root"), str(tmp_path / "none.json")) == 2
    out = capsys.readouterr().out.splitlines()
    assert f"file {tmp_path / 'none.json'}: datalist not found" in out
    assert f"file {tmp_path / 'no_root'}: data root is not a folder" in out

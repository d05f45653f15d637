"""``fedbrats brats-partition``: BraTS 2018 split into sites by institution, grouped and seeded."""

import filecmp
import json
import os

import pytest

from fedbrats.cli import main
from fedbrats.package_data import CASE_TABLE
from fedbrats.prepare.brats_partition import (
    INSTITUTIONS_DIR,
    PARTITION_FILE,
    group_institutions,
    institution,
    institution_partition,
    split_sizes,
    write_partition,
)
from fedbrats.runtime.constants import CENTRAL_SITE, SPLITS
from fedbrats.runtime.data.datalist import read_case_table
from fedbrats.runtime.errors import BratsDataError

COUNTS = {"CBICA": 88, "TCIA10": 35, "TCIA02": 34, "2013": 30, "TCIA01": 22, "TCIA08": 14, "TCIA13": 13}
COUNTS.update({"TCIA03": 12, "TCIA09": 11, "TCIA04": 8, "TCIA06": 8, "TCIA12": 6, "TCIA05": 4})
"""The 13 institutions of the 285 BraTS 2018 training cases and their cases."""


def case_ids(datalist, split):
    return [e["label"].split("/")[1] for e in datalist[split]]


def test_regenerating_the_institution_partition_gives_the_committed_files(tmp_path):
    paths, _ = write_partition(str(tmp_path))
    assert len(paths) == 14  # 13 sites and site-All
    for name in [f"{site}.json" for site in paths] + [PARTITION_FILE]:
        assert filecmp.cmp(tmp_path / name, os.path.join(INSTITUTIONS_DIR, name), shallow=False), name
    assert sorted(os.listdir(INSTITUTIONS_DIR)) == sorted(os.listdir(tmp_path))


def test_the_institution_of_a_case_id():
    assert [institution(c) for c in ("Brats18_CBICA_AAB_1", "Brats18_TCIA01_131_1", "Brats18_2013_2_1")] == [
        "CBICA",
        "TCIA01",
        "2013",
    ]
    with pytest.raises(BratsDataError, match="case BraTS20_Training_001, file cases.tsv: the case id names no"):
        institution("BraTS20_Training_001", "cases.tsv")


def test_one_site_per_institution_holds_every_case_once():
    datalists, summary = institution_partition()
    grade_of = read_case_table(CASE_TABLE)
    assert {name: n for s in summary["sites"].values() for name, n in s["institutions"].items()} == COUNTS
    assert [list(s["institutions"]) for s in summary["sites"].values()] == [[name] for name in COUNTS]
    every = [c for site in summary["sites"] for s in SPLITS for c in case_ids(datalists[site], s)]
    assert sorted(every) == sorted(grade_of)
    for site, info in summary["sites"].items():
        (name,) = info["institutions"]
        cases = [c for s in SPLITS for c in case_ids(datalists[site], s)]
        assert all(institution(c) == name for c in cases) and len(cases) == info["cases"] == COUNTS[name]
        assert all(info[s] == len(datalists[site][s]) >= 1 for s in SPLITS)
        entries = [e for s in SPLITS for e in datalists[site][s]]
        assert all(e["label"] == f"{grade_of[c]}/{c}/{c}_seg.nii.gz" for e, c in zip(entries, cases))
    assert summary["sites"]["site-1"] == {
        "institutions": {"CBICA": 88},
        "cases": 88,
        "training": 62,
        "validation": 13,
        "testing": 13,
        "HGG": 88,
        "LGG": 0,
    }
    for split in SPLITS:
        assert datalists[CENTRAL_SITE][split] == [e for s in summary["sites"] for e in datalists[s][split]]


def test_institutions_grouped_into_balanced_sites():
    assert group_institutions(COUNTS, 3) == [
        ["CBICA", "TCIA06"],
        ["TCIA10", "TCIA01", "TCIA08", "TCIA03", "TCIA04", "TCIA05"],
        ["TCIA02", "2013", "TCIA13", "TCIA09", "TCIA12"],
    ]
    assert group_institutions(COUNTS, 1) == [sorted(COUNTS, key=lambda n: (-COUNTS[n], n))]
    _, summary = institution_partition(n_sites=3)
    assert [s["cases"] for s in summary["sites"].values()] == [96, 95, 94]
    with pytest.raises(ValueError, match="from 1 to the number of institutions \\(13\\)"):
        group_institutions(COUNTS, 14)


def test_the_split_is_seeded_the_grouping_is_not():
    one, two = institution_partition(n_sites=4, seed=1), institution_partition(n_sites=4, seed=2)
    assert one == institution_partition(n_sites=4, seed=1) and one[0] != two[0]
    assert [s["institutions"] for s in one[1]["sites"].values()] == [
        s["institutions"] for s in two[1]["sites"].values()
    ]


def test_split_sizes_keep_one_validation_and_one_testing_case():
    assert split_sizes(285) == (200, 42, 43) and split_sizes(4) == (2, 1, 1) and split_sizes(3) == (1, 1, 1)
    with pytest.raises(ValueError, match="at least 3 cases"):
        split_sizes(2)


def test_the_command_prints_each_site_and_writes_where_told(tmp_path, capsys):
    assert main(["brats-partition", "--by", "institution", "--sites", "3", "--seed", "5", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert (
        "site-1: 96 cases (96 HGG, 0 LGG) from CBICA (88), TCIA06 (8): 67 training, 14 validation, 15 testing"
        in printed
    )
    assert f"3 sites of 285 cases by institution (seed 5) in {tmp_path}" in printed
    assert json.load(open(tmp_path / PARTITION_FILE))["seed"] == 5
    with pytest.raises(SystemExit, match="give --out for a grouping"):
        main(["brats-partition", "--sites", "3"])

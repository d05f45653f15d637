"""``fedbrats msd-datalists``: seeded site splits of an MSD Task01 dataset.json in the reference proportions."""

import json
import os
import re

import pytest

from fedbrats.cli import main
from fedbrats.prepare.msd_datalists import apportion, msd_datalists, site_sizes
from fedbrats.runtime.constants import CENTRAL_SITE, REFERENCE_SPLIT_SIZES, SPLITS
from fedbrats.runtime.data.datalist import resolve_datalist

MODALITY = {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"}


def write_task01(root, n_cases=484, modality=MODALITY, touch=True):
    """A Task01 folder as MSD ships it: dataset.json listing BRATS_001... (empty files: only the split is tested)."""
    training = [
        {"image": f"./imagesTr/BRATS_{k:03d}.nii.gz", "label": f"./labelsTr/BRATS_{k:03d}.nii.gz"}
        for k in range(1, n_cases + 1)
    ]
    for folder in ("imagesTr", "labelsTr"):
        os.makedirs(os.path.join(root, folder), exist_ok=True)
    if touch:
        for item in training:
            for rel in item.values():
                open(os.path.join(root, rel), "w").close()
    path = os.path.join(root, "dataset.json")
    dataset = {"name": "BrainTumour", "modality": modality, "numTraining": n_cases, "training": training}
    with open(path, "w") as f:
        json.dump(dataset, f)
    return path


def case_ids(datalist, split):
    return [os.path.basename(e["label"])[: -len(".nii.gz")] for e in datalist[split]]


def test_reference_proportions_by_largest_remainder():
    assert site_sizes(285) == list(REFERENCE_SPLIT_SIZES.values())
    assert site_sizes(484) == [(245, 51, 61), (95, 20, 12)]
    assert site_sizes(484, 3) == [(113, 24, 25), (113, 24, 24), (113, 24, 24)]
    assert apportion(10, [1, 1, 1]) == [4, 3, 3] and sum(apportion(484, [144, 30, 36, 56, 12, 7])) == 484


def test_two_sites_of_task01_written_next_to_dataset_json(tmp_path, capsys):
    dataset = write_task01(str(tmp_path))
    assert main(["msd-datalists", "--dataset-json", dataset]) == 0
    printed = capsys.readouterr().out
    assert "site-1: 245 training, 51 validation, 61 testing" in printed
    assert "site-2: 95 training, 20 validation, 12 testing" in printed
    assert f"data root: {tmp_path} (seed 2018)" in printed
    lists = {s: json.load(open(tmp_path / "datalists" / f"{s}.json")) for s in ("site-1", "site-2", CENTRAL_SITE)}
    every = [c for site in ("site-1", "site-2") for s in SPLITS for c in case_ids(lists[site], s)]
    assert sorted(every) == [f"BRATS_{k:03d}" for k in range(1, 485)]  # each case once
    for split in SPLITS:
        assert lists[CENTRAL_SITE][split] == lists["site-1"][split] + lists["site-2"][split]
    entry = lists["site-1"]["training"][0]
    case = case_ids(lists["site-1"], "training")[0]
    assert entry == {"image": f"imagesTr/{case}.nii.gz", "label": f"labelsTr/{case}.nii.gz", "format": "msd"}
    resolved = resolve_datalist(str(tmp_path / "datalists" / "site-2.json"), "testing", str(tmp_path))
    assert len(resolved) == 12 and resolved[0]["format"] == "msd" and os.path.isabs(resolved[0]["image"])


def test_the_split_is_seeded_and_takes_n_sites(tmp_path):
    dataset = write_task01(str(tmp_path))
    assert msd_datalists(dataset, seed=1) == msd_datalists(dataset, seed=1)
    assert msd_datalists(dataset, seed=1) != msd_datalists(dataset, seed=2)
    three = msd_datalists(dataset, n_sites=3)
    assert sorted(three) == ["site-1", "site-2", "site-3", CENTRAL_SITE]
    assert [tuple(len(three[s][split]) for split in SPLITS) for s in ("site-1", "site-2", "site-3")] == site_sizes(
        484, 3
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"modality": {"0": "T1", "1": "T1gd", "2": "T2", "3": "FLAIR"}}, "the MSD Task01 layout has the 4D image"),
        ({"n_cases": 10}, "10 cases are too few for 2 site\\(s\\): site-2 would have no testing case"),
        ({"touch": False}, r"case BRATS_001, file .*imagesTr/BRATS_001.nii.gz: file not found"),
    ],
)
def test_bad_dataset_json_gives_one_clear_error(tmp_path, capsys, kwargs, message):
    dataset = write_task01(str(tmp_path), **kwargs)
    assert main(["msd-datalists", "--dataset-json", dataset]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fedbrats msd-datalists: bad input: ") and re.search(message, err)


def test_a_path_outside_the_dataset_folder_is_refused(tmp_path, capsys):
    dataset = write_task01(str(tmp_path / "Task01"), n_cases=60)
    data = json.load(open(dataset))
    data["training"][3]["label"] = "../../labels/BRATS_004.nii.gz"
    json.dump(data, open(dataset, "w"))
    assert main(["msd-datalists", "--dataset-json", dataset, "--out", str(tmp_path / "lists")]) == 2
    assert "case BRATS_004, file ../../labels/BRATS_004.nii.gz: path escapes the data root" in capsys.readouterr().err

"""The reference split of BraTS 2018 that the package ships: regenerated, it gives the committed datalists."""

import filecmp
import json
import os

from conftest import REPO

from fedbrats.package_data import CASE_TABLE, REFERENCE_DATALISTS
from fedbrats.prepare.datalists import reference_datalists, write_reference_datalists
from fedbrats.runtime.constants import CENTRAL_SITE, REFERENCE_SPLIT_SIZES, SPLITS


def cases(datalist, split):
    return [e["label"].split("/")[1] for e in datalist[split]]


def test_regenerating_reference_datalists_gives_the_committed_files(tmp_path):
    paths = write_reference_datalists(CASE_TABLE, str(tmp_path))
    for site, path in paths.items():
        assert filecmp.cmp(path, os.path.join(REFERENCE_DATALISTS, f"{site}.json"), shallow=False), site


def test_reference_split_sizes_grades_and_disjointness():
    lists = reference_datalists(CASE_TABLE)
    for site, sizes in REFERENCE_SPLIT_SIZES.items():
        assert tuple(len(lists[site][s]) for s in SPLITS) == sizes
        grade = "HGG" if site == "site-1" else "LGG"
        all_cases = [c for s in SPLITS for c in cases(lists[site], s)]
        assert len(set(all_cases)) == len(all_cases)
        assert all(e["label"].startswith(f"{grade}/") for s in SPLITS for e in lists[site][s])
    for split in SPLITS:
        assert cases(lists[CENTRAL_SITE], split) == cases(lists["site-1"], split) + cases(lists["site-2"], split)


def test_seed_changes_the_split():
    assert reference_datalists(CASE_TABLE, seed=1) != reference_datalists(CASE_TABLE, seed=2)


def test_entry_layout_matches_brats_2018():
    entry = reference_datalists(CASE_TABLE)["site-1"]["training"][0]
    case = entry["label"].split("/")[1]
    assert entry["image"] == [f"HGG/{case}/{case}_{m}.nii.gz" for m in ("t1ce", "t1", "t2", "flair")]
    assert entry["label"] == f"HGG/{case}/{case}_seg.nii.gz"


def test_the_package_ships_the_repositorys_one_copy_of_the_datalists():
    top = os.path.join(REPO, "datalists")
    assert os.path.samefile(REFERENCE_DATALISTS, top)
    site_1 = json.load(open(os.path.join(top, "site-1.json")))
    assert tuple(len(site_1[s]) for s in SPLITS) == REFERENCE_SPLIT_SIZES["site-1"] == (144, 30, 36)

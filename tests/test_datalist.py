import filecmp
import json
import os

import pytest

from fedbrats.constants import CENTRAL_SITE, REFERENCE_SPLIT_SIZES, SPLITS
from fedbrats.datalist import load_datalist, resolve_datalist
from fedbrats.errors import BratsDataError
from fedbrats.tools.package_data import CASE_TABLE, REFERENCE_DATALISTS
from fedbrats.tools.reference_split import reference_datalists, write_reference_datalists


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


def test_resolve_gives_absolute_existing_paths(tiny_site):
    root, datalist = tiny_site
    entries = resolve_datalist(datalist, "training", root)
    assert len(entries) == 2 and entries[0]["case"] == "Case_001"
    assert all(os.path.isabs(p) and os.path.isfile(p) for p in entries[0]["image"] + [entries[0]["label"]])


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"training": []}), "is empty"),
        (json.dumps({"validation": []}), "no list named 'training'"),
        (json.dumps({"training": [{"image": ["a.nii.gz"], "label": "Case_9/x_seg.nii.gz"}]}), "entry 0"),
        (json.dumps([{"image": [], "label": ""}]), "must be a JSON object"),
    ],
)
def test_malformed_datalists_name_the_file(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(BratsDataError, match=message) as err:
        load_datalist(str(path), "training")
    assert str(path) in str(err.value)


def test_missing_datalist(tmp_path):
    with pytest.raises(BratsDataError, match="datalist not found"):
        load_datalist(str(tmp_path / "none.json"), "training")


def test_path_escaping_the_data_root_is_refused(tiny_site, tmp_path):
    root, datalist = tiny_site
    data = json.load(open(datalist))
    data["training"][0]["image"][2] = "../outside/Case_001_t2.nii.gz"
    bad = tmp_path / "escape.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(BratsDataError, match="escapes the data root") as err:
        resolve_datalist(str(bad), "training", root)
    assert "Case_001" in str(err.value) and "Case_001_t2.nii.gz" in str(err.value)


def test_missing_modality_names_case_and_file(tiny_site):
    root, datalist = tiny_site
    entry = json.load(open(datalist))["training"][1]
    os.remove(os.path.join(root, entry["image"][3]))
    with pytest.raises(BratsDataError, match="file not found") as err:
        resolve_datalist(datalist, "training", root)
    assert "case Case_002" in str(err.value) and "Case_002_flair.nii.gz" in str(err.value)

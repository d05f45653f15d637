import json
import os

import pytest

from fedbrats.runtime.data.datalist import load_datalist, resolve_datalist
from fedbrats.runtime.errors import BratsDataError


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

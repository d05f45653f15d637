"""``fedbrats bench cache``: the loader's targets from its figures, and a small run written into the page and its
JSON."""

import json
import os

import pytest
from builders import write_site

from fedbrats.cli import main
from fedbrats.research.bench.cache import FULL_SHAPE, REFERENCE_CROP, per_core, speed_ups, targets, verdict


def loader_row(repeat, path, workers, crops_per_s, cache_rate=0.0):
    return {
        "repeat": repeat,
        "path": path,
        "num_workers": workers,
        "crops_per_s": crops_per_s,
        "cache_rate": cache_rate,
    }


def test_targets_are_met_only_when_every_measurement_clears_them():
    rows = [loader_row(1, "before", 0, 1.0), loader_row(1, "now", 0, 2.2), loader_row(1, "before", 2, 1.5)]
    rows += [loader_row(1, "now", 2, 2.7), loader_row(1, "cached", 0, 4.0, 1.0)]
    result = {"profile": {"case_shape": FULL_SHAPE, "crop": REFERENCE_CROP}, "speed_up": speed_ups(rows)}
    result["per_core"] = per_core(rows, cpus=2)
    assert [(r["num_workers"], r["speed_up"]) for r in result["speed_up"]] == [(0, 2.2), (2, 1.8)]
    assert [r["projected_crops_per_s"] for r in result["per_core"]] == [17.6, 10.8]
    speed, feed = targets(result)
    assert (speed["verdict"], speed["min"], speed["measurements"]) == ("not shown", 1.8, 2)
    assert (feed["verdict"], feed["min"]) == ("met", 10.8)
    assert verdict([1.0, 1.5], 2.0) == "missed" and verdict([], 2.0) == "not shown"
    small = dict(result, profile={"case_shape": [48, 48, 48], "crop": [32, 32, 32]})
    assert [t["verdict"] for t in targets(small)] == ["not shown", "not shown"]


@pytest.mark.slow
def test_a_small_run_measures_both_paths_side_by_side_and_writes_its_section(tmp_path):
    data = tmp_path / "data"
    os.makedirs(data / "datalists")
    write_site(str(data), n_train=1, n_val=1, n_test=1, shape=(40, 40, 40), name="datalists/site-1.json")
    out, page = tmp_path / "cache.json", tmp_path / "benchmarks.md"
    small = ["--cases", "2", "--crops", "1", "--workers", "0", "1", "--repeats", "1", "--profile-cases", "1"]
    args = ["bench", "cache", "--data", str(data), *small, "--crop", "32", "32", "32"]
    assert main(args + ["--out", str(out), "--markdown", str(page)]) == 0
    result = json.load(open(out))
    assert {(r["path"], r["num_workers"]) for r in result["loader"]} == {
        ("before", 0),
        ("now", 0),
        ("before", 1),
        ("now", 1),
        ("cached", 0),
    }
    assert all(r["crop_shape"][2:] == [32, 32, 32] and r["crops_per_s"] > 0 for r in result["loader"])
    assert [r["num_workers"] for r in result["speed_up"]] == [0, 1] and result["profile"]["case_shape"] == [40] * 3
    assert set(result["profile"]["stages_s"]["now"]) >= {"read and decode", "normalise", "crop", "augment"}
    assert [t["verdict"] for t in result["targets"]] == ["not shown", "not shown"]
    text = page.read_text()
    assert "### Where an uncached crop's time goes (1 cases)" in text and "| target | min |" in text

"""``fedbrats bench gpu`` (what scripts/gpu_check.sh runs) on the CPU with tiny settings: every part runs and is
written into the page and its JSON."""

import json

import pytest

from fedbrats.cli import main

pytestmark = pytest.mark.slow


def test_every_part_of_the_gpu_check_runs_on_a_cpu_and_is_written(tmp_path, capsys):
    tiny = ["--crop", "32", "32", "32", "--init-filters", "8", "--steps", "1", "--cases", "3", "--size", "reduced"]
    tiny += [
        "--workers",
        "0",
        "--crops",
        "2",
        "--rounds",
        "1",
        "--local-steps",
        "1",
        "--job-filters",
        "8",
        "--pixdim",
        "4",
        "--ddp-processes",
        "2",
    ]
    docs, work = tmp_path / "docs", tmp_path / "work"
    assert main(["bench", "gpu", "--device", "cpu", "--docs", str(docs), "--work", str(work), *tiny]) == 0
    result = json.load(open(docs / "benchmarks-gpu.json"))
    for name in ("steps", "loader", "federation", "infer"):
        assert "figures" in result[name], (name, result[name])
    [step] = result["steps"]["figures"]
    assert step["crop"] == [32, 32, 32] and step["init_filters"] == 8 and step["s_per_step"] > 0
    assert [(r["cache_rate"], r["num_workers"]) for r in result["loader"]["figures"]] == [(0, 0), (1, 0)]
    assert all(r["crop_shape"][2:] == [32, 32, 32] and r["crops_per_s"] > 0 for r in result["loader"]["figures"])
    federation = result["federation"]["figures"]
    assert federation["site_device"] == "cpu" and len(federation["round_s"]) == 1 and not federation["warnings"]
    assert len(federation["models"]) == 4 and all(len(sites) == 2 for sites in federation["models"].values())
    assert result["infer"]["figures"]["case_s"] > 0 and result["gpus"] == 0
    ddp = result["ddp"]["figures"]
    assert ddp["processes"] == {"site-1": 2, "site-2": 1} and len(ddp["round_s"]) == 1
    assert ddp["crops_per_s"]["site-1"] > 0 and federation["crops_per_s"]["site-1"] > 0
    page = (docs / "benchmarks-gpu.md").read_text()
    assert "## Training step on cpu" in page
    assert "0 GPU(s) visible" in page
    assert "## A 1-round FedAvg job in FLARE's simulator, both sites on cpu" in page
    assert "Not measured" not in page and "Not run: no model" not in page
    assert "site-1 training in 2 processes (PyTorch DDP" in page and "gloo on the CPU" in page

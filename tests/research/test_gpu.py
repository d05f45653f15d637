"""``fedbrats bench gpu`` (what scripts/gpu_check.sh runs) on the CPU with tiny settings: every part runs and is
written into the page and its JSON. The data-parallel part is the same simulator job with site-1 in several processes,
which tests/runtime/fl/test_fl_ranks.py runs; here its section is checked on given figures."""

import json

import pytest

from fedbrats.cli import main
from fedbrats.research.bench.gpu import ddp_lines


@pytest.mark.slow
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
    assert result["ddp"] == {"error": "this machine has 0 GPU(s); data-parallel training of a site needs 2 or more"}
    assert federation["crops_per_s"]["site-1"] > 0
    page = (docs / "benchmarks-gpu.md").read_text()
    assert "## Training step on cpu" in page
    assert "0 GPU(s) visible" in page
    assert "## A 1-round FedAvg job in FLARE's simulator, both sites on cpu" in page
    assert "Not measured" not in page and "Not run: no model" not in page
    assert "Not run: this machine has 0 GPU(s)" in page


def test_the_data_parallel_section_sets_site_1_in_n_processes_beside_one():
    figures = {"processes": {"site-1": 2, "site-2": 1}, "crops_per_s": {"site-1": 3.0}, "round_s": [5.0]}
    result = {"gpus": 0, "ddp": {"figures": figures}}
    result["federation"] = {"figures": {"crops_per_s": {"site-1": 2.0}, "round_s": [6.5]}}
    lines = ddp_lines(result)
    assert "site-1 training in 2 processes (PyTorch DDP" in lines[0] and "gloo on the CPU" in lines[0]
    assert "| 1 | 2.0 | 6.5 |" in lines and "| 2 | 3.0 | 5.0 |" in lines
    assert lines[-1] == "Speed-up of site-1's training: 1.50x."

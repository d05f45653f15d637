"""A simulator run where site-1 trains in 2 processes (its ``processes`` setting) and site-2 in one."""

import json
import os
import re

import pytest
from builders import TINY_TRAINING, write_site

from fedbrats.federation.build_job import build_job
from fedbrats.runners.simulate import run_simulator
from fedbrats.runtime.fl.site_data import write_site_settings

pytestmark = pytest.mark.slow

SITES = ["site-1", "site-2"]
ROUNDS = 2


def test_a_site_in_two_processes_trains_with_both_and_validates_in_rank_0(tmp_path):
    site_data = {}
    for k, site in enumerate(SITES):
        root = str(tmp_path / f"data-{site}")
        datalist = write_site(root, n_train=2, n_val=1, n_test=1, name=f"{site}.json", seed=100 * k)
        site_data[site] = {"data_root": root, "datalist": datalist}
    site_data["site-1"]["processes"] = 2
    settings = write_site_settings(str(tmp_path / "sites.json"), site_data)
    job = build_job("brats_fedavg_demo", str(tmp_path / "jobs"), {"num_rounds": ROUNDS, "training": TINY_TRAINING})
    workspace = str(tmp_path / "sim")
    run_simulator(job, workspace, SITES, 2, settings, quiet=True)  # raises unless the job ends normally

    # site-1's job process and its ranks write into its logs
    log = "".join(open(os.path.join(workspace, "site-1", p)).read() for p in ("log.txt", "simulate_job/log.txt"))
    assert "training in 2 processes" in log
    assert "rank 0 of 2, data root" in log and "rank 1 of 2, data root" in log
    # each rank holds one of the 2 training cases; the validation case is prepared and scored by rank 0 alone
    assert log.count("training: cached 1 of 1 cases") == 2
    assert log.count("preparing validation cases") == 1
    for r in range(1, ROUNDS + 1):
        assert len(re.findall(rf"round {r}/{ROUNDS}: global model val Dice .*, 2 steps", log)) == 1, r
    assert "failed" not in log

    server_log = open(os.path.join(workspace, "server", "log.txt")).read()
    assert server_log.count("Contribution from site-1 ACCEPTED") == ROUNDS
    results = os.path.join(workspace, "server", "simulate_job", "cross_site_val", "cross_val_results.json")
    results = json.load(open(results))
    assert results["site-1"]["site-1"] and results["site-2"]["site-1"]  # rank 0 sent its best model and scored all

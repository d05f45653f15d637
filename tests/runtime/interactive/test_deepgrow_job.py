"""brats_deepgrow in FLARE's simulator (two tiny rounds), then ``fedbrats clicks`` on its best global model."""

import json
import os

import pytest
from builders import TINY_TRAINING, write_site

from fedbrats.cli import main
from fedbrats.evaluation.report import BEST_GLOBAL
from fedbrats.federation.build_job import build_job
from fedbrats.runners.simulate import run_simulator
from fedbrats.runtime.constants import MEAN_DICE
from fedbrats.runtime.fl.site_data import write_site_settings

pytestmark = pytest.mark.slow

SITES = ["site-1", "site-2"]
TRAINING = {**TINY_TRAINING, "pixdim": 2.0, "crop": [16, 16, 16], "sw_roi": [16, 16, 16], "max_clicks": 2}


def test_the_job_trains_with_clicks_and_its_model_is_scored_against_clicks(tmp_path):
    site_data = {}
    for k, site in enumerate(SITES):
        root = str(tmp_path / f"data-{site}")
        site_data[site] = {"data_root": root, "datalist": write_site(root, 2, 1, 1, name=f"{site}.json", seed=10 * k)}
    settings = write_site_settings(str(tmp_path / "sites.json"), site_data)
    overrides = {"num_rounds": 2, "training": {**TRAINING, "eval_clicks": 2}}
    job = build_job("brats_deepgrow", str(tmp_path / "jobs"), overrides)
    workspace = str(tmp_path / "sim")
    run_simulator(job, workspace, SITES, 2, settings, quiet=True)
    server = os.path.join(workspace, "server", "simulate_job")
    results = json.load(open(os.path.join(server, "cross_site_val", "cross_val_results.json")))
    for site in SITES:
        scores = results[site][BEST_GLOBAL]
        assert scores["clicks"] == 2 and 0 <= scores[f"{MEAN_DICE}_0_clicks"] <= 1 and 0 <= scores[MEAN_DICE] <= 1
    out = str(tmp_path / "clicks")
    model = os.path.join(server, "app_server", "best_FL_global_model.pt")
    assert main(["clicks", model, "--site-data", settings, "--clicks", "2", "--out", out]) == 0
    result = json.load(open(os.path.join(out, "clicks.json")))
    assert set(result["sites"]) == {*SITES, "all"} and result["sites"]["all"]["cases"] == 2

"""A real simulator run in which one site's updates turn NaN: the site's guard and the server's guard.

site-2 sends a NaN tensor in round 0 past its own guard (the server refuses it) and its training turns NaN in
round 1 (the site refuses to send). With ``min_clients`` 1 the server averages site-1 alone in both rounds.
"""

import glob
import json
import os

import pytest
import torch
from builders import TINY_TRAINING
from fl_probes import NAN_REPLY, NAN_TRAINING
from probe_jobs import probe_job, run_probe_job, tiny_sites

from fedbrats.runners.simulate import simulator_log
from fedbrats.runtime.model import build_model, load_weights
from fedbrats.runtime.settings import TrainSettings
from fedbrats.runtime.update_guards import nonfinite_tensors

pytestmark = pytest.mark.slow


def test_nan_updates_are_refused_and_the_global_model_stays_finite(tmp_path):
    tmp = str(tmp_path)
    overrides = {"num_rounds": 2, "min_clients": 1, "wait_time_after_min_received": 300}
    job = probe_job(tmp, overrides, faults={"site-2": {0: NAN_REPLY, 1: NAN_TRAINING}})
    workspace = run_probe_job(tmp, job, tiny_sites(tmp))

    server = os.path.join(workspace, "server", "simulate_job", "app_server")
    settings = TrainSettings.from_dict(TINY_TRAINING)
    for name in ("FL_global_model.pt", "best_FL_global_model.pt"):
        model = load_weights(build_model(settings), os.path.join(server, name))
        assert nonfinite_tensors(model.state_dict()) == [], name

    log = open(simulator_log(workspace)).read()
    assert "refused the update of site-2 at round 0: 1 of 102 tensors hold NaN or Inf: " in log
    assert "round 0: averaging site-1; refused: site-2" in log
    assert "site-2 round 2/2: refusing to send the update: training left " in log
    assert "Contribution from site-1 ACCEPTED by the aggregator at round 1" in log
    assert "ScoredScatterAndGather exiting" not in log

    # site-2 keeps the best local model of round 0; the NaN model of round 1 never replaced it
    app = os.path.join(workspace, "site-2", "simulate_job", "app_site-2")
    checkpoint = torch.load(os.path.join(app, "best_local_model.pt"), weights_only=False)
    assert checkpoint["round"] == 0 and nonfinite_tensors(checkpoint["model"]) == []
    results = glob.glob(f"{workspace}/server/simulate_job/cross_site_val/cross_val_results.json")
    assert "site-2" in json.load(open(results[0]))["site-1"]

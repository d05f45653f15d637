"""FedOpt, SCAFFOLD and Ditto in a real simulator run: two rounds, two sites with different cases, what each site
sent and received recorded at the site (``fl_probes.SiteRecorder``) and checked against the method's rule. FedProx
changes only a site's loss: tests/runtime/fl/test_site_algorithms.py."""

import glob
import os

import numpy as np
import pytest
import torch
from probe_jobs import probe_job, run_probe_job, tiny_sites

from fedbrats.evaluation.report import write_report
from fedbrats.runners.simulate import simulator_log

pytestmark = pytest.mark.slow
WEIGHTS, CONTROLS_SENT, CONTROLS_RECEIVED = "_model_weights_", "scaffold_c_diff", "scaffold_c_global"


def run(tmp_path, algorithm, args=None):
    """The demo job with ``algorithm``, 2 rounds; returns the simulator workspace and the recordings folder."""
    tmp = str(tmp_path)
    site_data = tiny_sites(tmp, sizes=((2, 1, 2), (3, 2, 1)))
    records = os.path.join(tmp, "records")
    overrides = {"num_rounds": 2, "algorithm": algorithm, "algorithm_args": args or {}}
    workspace = run_probe_job(tmp, probe_job(tmp, overrides, record_to=records), site_data)
    log = open(simulator_log(workspace)).read()
    assert log.count(f"algorithm {algorithm} {{") == 2
    assert "Traceback" not in log and "refused" not in log
    return workspace, records


def recorded(records, direction, site, task="train"):
    """Each recorded shareable's arrays, in the order the site sent or received them."""
    files = sorted(glob.glob(os.path.join(records, f"{direction}_{site}_{task}_*.npz")))
    return [dict(np.load(f)) for f in files]


def part(arrays, *path):
    """The tensors under ``DXO|data|<path>|`` by their names."""
    prefix = "|".join(("DXO", "data") + path + ("",)) if path else "DXO|data|"
    return {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix) and "|" not in k[len(prefix) :]}


def final_global_model(workspace):
    path = glob.glob(os.path.join(workspace, "server", "*", "app_server", "FL_global_model.pt"))[0]
    return {k: v.numpy() for k, v in torch.load(path, map_location="cpu", weights_only=False)["model"].items()}


def test_fedopt_moves_the_global_model_by_sgd_with_momentum_on_the_mean_update(tmp_path):
    workspace, records = run(tmp_path, "fedopt", {"lr": 1.0, "momentum": 0.6})
    received = recorded(records, "received", "site-1")
    assert len(received) == 2
    global_1 = part(received[1])
    mean_diff = [
        {k: np.mean([part(recorded(records, "sent", s)[r])[k] for s in ("site-1", "site-2")], axis=0) for k in global_1}
        for r in range(2)
    ]
    # torch's SGD on the gradient -diff: buffer = 0.6 x buffer + (-diff); w -= 1.0 x buffer
    final = final_global_model(workspace)
    for name, value in global_1.items():
        expected = value + mean_diff[1][name] + 0.6 * mean_diff[0][name]
        np.testing.assert_allclose(final[name], expected, rtol=1e-5, atol=1e-6, err_msg=name)
    assert any(np.abs(mean_diff[1][k]).max() > 0 for k in global_1)


def test_scaffold_sends_control_changes_and_gets_back_their_mean(tmp_path):
    _, records = run(tmp_path, "scaffold")
    sent = {s: recorded(records, "sent", s) for s in ("site-1", "site-2")}
    received = recorded(records, "received", "site-1")
    assert all(np.abs(v).max() == 0 for v in part(received[0], CONTROLS_RECEIVED, "data").values())
    changes = [part(sent[s][0], CONTROLS_SENT, "data") for s in sent]
    assert changes[0].keys() == changes[1].keys() and changes[0]
    assert any(np.abs(v).max() > 0 for v in changes[0].values())
    controls = part(received[1], CONTROLS_RECEIVED, "data")
    for name, value in controls.items():
        np.testing.assert_allclose(value, (changes[0][name] + changes[1][name]) / 2, rtol=1e-5, atol=1e-7)
    # the weights travel beside the controls: the change made by the site's local steps
    assert part(sent["site-1"][0], WEIGHTS, "data").keys() >= controls.keys()


def test_ditto_keeps_a_personal_model_per_site_that_the_cross_site_evaluation_scores(tmp_path):
    workspace, records = run(tmp_path, "ditto", {"lambda": 0.5})
    assert open(simulator_log(workspace)).read().count("algorithm ditto {'lambda': 0.5},") == 2  # the job's arguments
    final = final_global_model(workspace)
    name = "convInit.conv.weight"
    for site in ("site-1", "site-2"):
        app = glob.glob(os.path.join(workspace, site, "*", f"app_{site}"))[0]
        personal = torch.load(os.path.join(app, "ditto", "personalized_model.pt"), weights_only=True)
        assert personal["epoch"] == 2  # FLARE's Ditto helper saved the personal model after each of the 2 rounds
        best = torch.load(os.path.join(app, "best_local_model.pt"), weights_only=False)
        submitted = part(recorded(records, "sent", site, "submit_model")[0])
        # the site's local model in the cross-site evaluation is its best personal model: neither the global model
        # nor the site's update of it
        np.testing.assert_array_equal(submitted[name], best["model"][name].numpy())
        if best["round"] == 1:
            np.testing.assert_array_equal(submitted[name], personal["model"][name].numpy())
        assert not np.allclose(submitted[name], final[name])
        assert not np.allclose(submitted[name], part(recorded(records, "sent", site)[best["round"]])[name])
    report = write_report(workspace)
    assert "site-1" in report["markdown"] and "site-2" in report["markdown"]

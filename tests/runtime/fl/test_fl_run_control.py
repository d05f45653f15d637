"""A simulator run that starts from a given model, stops when the global model stops improving, and records the
sites' figures in MLflow on the server."""

import json
import os

import pytest
import torch
from builders import TINY_TRAINING, write_fl_model
from probe_jobs import SITES, run_probe_job, tiny_sites

from fedbrats.evaluation.report import write_report
from fedbrats.federation.build_job import build_job
from fedbrats.runtime.fl.model_selector import SELECTION_FILE

pytestmark = pytest.mark.slow

ROUNDS, PATIENCE = 6, 1


@pytest.fixture(scope="module")
def frozen_run(tmp_path_factory):
    """A run whose sites cannot change the model (learning rate 0): no round after the first scored one is a new
    best, so the run stops ``PATIENCE`` rounds later; the final global model is the initial one."""
    tmp = str(tmp_path_factory.mktemp("run-control"))
    initial = write_fl_model(os.path.join(tmp, "given"), TINY_TRAINING, seed=7)
    overrides = {
        "training": {**TINY_TRAINING, "learning_rate": 0.0},
        "num_rounds": ROUNDS,
        "patience": PATIENCE,
        "init_model": initial,
        "tracking": "mlflow",
    }
    job = build_job("brats_fedavg_demo", os.path.join(tmp, "jobs"), overrides)
    workspace = run_probe_job(tmp, job, tiny_sites(tmp))
    return workspace, initial


def test_the_run_starts_from_the_given_model(frozen_run):
    workspace, initial = frozen_run
    final = torch.load(os.path.join(workspace, "server", "simulate_job", "app_server", "FL_global_model.pt"))
    given = torch.load(initial)["model"]
    assert set(final["model"]) == set(given)
    for name, value in given.items():
        torch.testing.assert_close(torch.as_tensor(final["model"][name]), value, rtol=0, atol=1e-6)


def test_the_run_stops_after_patience_rounds_without_a_new_best(frozen_run, tmp_path):
    workspace, _ = frozen_run
    selection = json.load(open(os.path.join(workspace, "server", "simulate_job", "app_server", SELECTION_FILE)))
    # round 1's model is the first scored and the best; round 2's is no better: the run ends after round 3,
    # whose final model is scored too
    assert [h["round"] for h in selection["history"]] == [1, 2, 3]
    assert selection["best_round"] == 1
    assert selection["stopped"]["round"] == 3 and selection["stopped"]["planned"] == ROUNDS
    report = write_report(workspace, str(tmp_path))
    assert "stopped early, after round 3 of 6 planned" in report["markdown"]
    assert "no new best global model in the last 1 round (patience 1; best: round 1)" in report["markdown"]
    assert "## global model after 3 rounds" in report["markdown"]  # the cross-site evaluation still ran


def test_mlflow_on_the_server_holds_every_site_s_figures(frozen_run):
    from mlflow.tracking import MlflowClient

    workspace, _ = frozen_run
    database = [os.path.join(d, f) for d, _, files in os.walk(workspace) for f in files if f == "mlflow.db"]
    assert len(database) == 1 and os.sep + "server" + os.sep in database[0]
    client = MlflowClient(tracking_uri=f"sqlite:///{database[0]}")
    experiment = client.get_experiment_by_name("brats_fedavg_demo")
    runs = client.search_runs([experiment.experiment_id])
    by_site = {site: [r for r in runs if site in r.info.run_name] for site in SITES}
    assert all(len(found) == 1 for found in by_site.values()), [r.info.run_name for r in runs]
    for (run,) in by_site.values():
        history = client.get_metric_history(run.info.run_id, "global_model/mean_dice")
        assert sorted(m.step for m in history) == [0, 1, 2]  # the model each of the 3 rounds received
        steps = client.get_metric_history(run.info.run_id, "train/steps")
        assert [m.value for m in steps] == [TINY_TRAINING["local_steps"]] * 3
        assert client.get_metric_history(run.info.run_id, "train/crops_per_second")[0].value > 0

"""Job options that control a run: the model it starts from, when it stops, where the server records the sites'
figures."""

import json
import os

import pytest
import torch
from builders import TINY_FLAGS, TINY_TRAINING, write_fl_model
from test_resume import component, kept_run, server_config

from fedbrats.cli import main
from fedbrats.evaluation.report import run_end_text
from fedbrats.federation.catalog import job_definition
from fedbrats.federation.recipe import INITIAL_MODEL
from fedbrats.federation.resume import resume_definition

JOB = "brats_fedavg_demo"


def build(tmp_path, *flags):
    assert main(["build-job", JOB, "--out", str(tmp_path / "jobs"), *TINY_FLAGS, *flags]) == 0
    return os.path.join(tmp_path, "jobs", JOB)


def test_a_job_carries_its_initial_model_checked_and_the_persistor_starts_from_it(tmp_path):
    given = write_fl_model(str(tmp_path / "earlier"), TINY_TRAINING, seed=3)
    job = build(tmp_path, "--init-model", given, "--patience", "5")
    persistor = component(server_config(job), "persistor")
    assert persistor["args"]["source_ckpt_file_full_name"] == INITIAL_MODEL  # relative to the server app's custom/
    carried = torch.load(os.path.join(job, "app", "custom", INITIAL_MODEL))
    assert set(carried) == {"model"}  # the weights only: nothing of the earlier run travels with them
    for name, value in torch.load(given)["model"].items():
        assert torch.equal(carried["model"][name], value)
    assert component(server_config(job), "fedavg")["args"]["patience"] == 5


def test_a_model_that_does_not_fit_the_network_is_refused_naming_the_file(tmp_path):
    other = write_fl_model(str(tmp_path / "other"), {**TINY_TRAINING, "init_filters": 16})
    with pytest.raises(SystemExit) as refused:
        build(tmp_path, "--init-model", other)
    message = str(refused.value)
    assert other in message and "does not fit SegResNetVAE(init_filters=8" in message and "wrong shape" in message
    not_a_model = tmp_path / "notes.pt"
    not_a_model.write_text("not a checkpoint")
    with pytest.raises(SystemExit, match="notes.pt.*cannot read the model file"):
        build(tmp_path, "--init-model", str(not_a_model))


def test_tensorboard_on_the_server_by_default_mlflow_as_an_option(tmp_path):
    receiver = component(server_config(build(tmp_path)), "receiver")
    assert receiver["path"].endswith("TBAnalyticsReceiver")
    client = json.load(open(os.path.join(tmp_path, "jobs", JOB, "app", "config", "config_fed_client.json")))
    converter = next(c for c in client["components"] if c["id"] == "analytics_to_server")
    assert converter["args"]["events_to_convert"] == ["analytix_log_stats"]
    uri = "http://mlflow.example.org:5000"
    receiver = component(server_config(build(tmp_path, "--tracking", "mlflow", "--tracking-uri", uri)), "receiver")
    assert receiver["path"].endswith("MLflowReceiver") and receiver["args"]["tracking_uri"] == uri
    assert receiver["args"]["kw_args"]["experiment_name"] == JOB


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"patience": -1}, "patience must not be negative"),
        ({"tracking": "wandb"}, "tracking must be one of"),
        ({"tracking_uri": "http://x"}, "tracking_uri is MLflow's"),
        ({"init_model": "/m.pt", "resume_from": "/run"}, "init_model and resume_from exclude each other"),
    ],
)
def test_bad_run_controls_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        job_definition(JOB).with_overrides(overrides)


def test_a_resumed_run_starts_from_its_own_last_model_not_the_initial_one(tmp_path):
    given = write_fl_model(str(tmp_path / "earlier"), TINY_TRAINING)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    run = kept_run(run_dir, rounds_done=2, overrides={"init_model": given})
    assert job_definition(JOB, {"training": TINY_TRAINING, "init_model": given}).init_model == given
    assert resume_definition(run, JOB).init_model == ""


def test_the_report_says_why_and_when_the_rounds_ended():
    stopped = {"round": 7, "planned": 20, "reason": "no new best global model in the last 3 rounds"}
    assert run_end_text(stopped, 7) == (
        "The rounds stopped early, after round 7 of 20 planned: no new best global model in the last 3 rounds. "
        "The final global model is the one of round 7."
    )
    assert run_end_text(None, 20) == "The run ended after its 20 rounds."
    assert run_end_text(None, None) is None


def test_gpu_requests_go_into_the_jobs_meta_as_flares_resource_spec(tmp_path):
    job = build(tmp_path, "--sites", "site-1", "site-2", "site-3", "--gpus", "1", "site-1=4", "--gpu-memory", "16")
    spec = json.load(open(os.path.join(job, "meta.json")))["resource_spec"]
    assert spec == {
        "site-1": {"num_of_gpus": 4, "mem_per_gpu_in_GiB": 16.0},
        "site-2": {"num_of_gpus": 1, "mem_per_gpu_in_GiB": 16.0},
        "site-3": {"num_of_gpus": 1, "mem_per_gpu_in_GiB": 16.0},
    }
    job = build(tmp_path, "--gpus", "site-2=2")
    assert json.load(open(os.path.join(job, "meta.json")))["resource_spec"] == {"site-2": {"num_of_gpus": 2}}
    assert not json.load(open(os.path.join(build(tmp_path), "meta.json"))).get("resource_spec")  # no request
    with pytest.raises(SystemExit, match="gpus must give a count"):
        build(tmp_path, "--gpus", "site-9=1")
    with pytest.raises(SystemExit, match="--gpus takes N or SITE=N"):
        build(tmp_path, "--gpus", "two")

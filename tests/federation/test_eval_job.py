"""brats_eval: given models scored on every site by the sites' validation code, without training."""

import glob
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch
from builders import TINY_FLAGS, TINY_TRAINING, write_fl_model
from conftest import REPO
from probe_jobs import SITES, tiny_sites

from fedbrats.cli import main
from fedbrats.evaluation.report import RESULTS_FILE, build_report, write_report
from fedbrats.federation.build_job import CONFIG_FILES, build_job
from fedbrats.federation.catalog import job_module, job_names
from fedbrats.federation.entry import run_job
from fedbrats.runners.simulate import run_simulator
from fedbrats.runners.train import BEST_MODEL, train_central
from fedbrats.runtime.constants import DICE_METRICS, HD95_METRICS, MEAN_DICE, N_CASES, SENSITIVITY_METRICS
from fedbrats.runtime.fl.given_models import read_weights
from fedbrats.runtime.fl.site_data import write_site_settings
from fedbrats.runtime.model import build_model
from fedbrats.runtime.settings import TrainSettings

EVAL = "brats_eval"


def configs(job_dir):
    return [json.load(open(os.path.join(job_dir, "app", "config", c))) for c in CONFIG_FILES]


def bare_state_dict(path, training=TINY_TRAINING, seed=1):
    """A model saved as a bare state dict (no ``"model"`` entry)."""
    torch.manual_seed(seed)
    torch.save(build_model(TrainSettings.from_dict(training)).state_dict(), path)
    return str(path)


def build_eval(tmp_path, *models):
    flags = ["build-job", EVAL, "--out", str(tmp_path / "jobs"), *TINY_FLAGS]
    return main([*flags, *[a for m in models for a in ("--model", str(m))]])


def test_build_job_writes_the_models_into_the_job(tmp_path, capsys):
    assert EVAL in job_names()
    flare = write_fl_model(str(tmp_path / "run"), TINY_TRAINING)
    bare = bare_state_dict(tmp_path / "bare.pt")
    assert build_eval(tmp_path, flare, bare) == 0
    job = tmp_path / "jobs" / EVAL
    server, client = configs(job)
    [workflow] = server["workflows"]
    assert workflow["path"].endswith("CrossSiteModelEval") and workflow["args"]["submit_model_task_name"] == ""
    locator = next(c for c in server["components"] if c["id"] == workflow["args"]["model_locator_id"])
    assert locator["path"] == "fedbrats.runtime.fl.given_models.GivenModelLocator"
    assert locator["args"]["models"] == {"FL_global_model": "models/FL_global_model.pt", "bare": "models/bare.pt"}
    [executor] = client["executors"]
    assert executor["tasks"] == ["validate"] and executor["executor"]["path"].endswith("BratsExecutor")
    assert executor["executor"]["args"]["eval_split"] == "testing"
    assert executor["executor"]["args"]["training"]["crop"] == [32, 32, 32]
    for name, source in (("FL_global_model", flare), ("bare", bare)):
        carried = read_weights(str(job / "app" / "config" / "models" / f"{name}.pt"))
        original = torch.load(source, weights_only=False)
        original = original.get("model", original)
        assert carried.keys() == original.keys() and all(torch.equal(carried[k], original[k]) for k in original)
    assert (job / "app" / "custom" / "fedbrats" / "runtime" / "fl" / "given_models.py").is_file()
    assert json.load(open(job / "meta.json"))["name"] == EVAL
    assert "job written to" in capsys.readouterr().out


def test_a_model_that_does_not_fit_the_network_is_refused_naming_the_file(tmp_path):
    wider = bare_state_dict(tmp_path / "wider.pt", {**TINY_TRAINING, "init_filters": 16})
    with pytest.raises(SystemExit) as refused:
        build_eval(tmp_path, wider)
    message = str(refused.value)
    assert message.startswith("fedbrats build-job: ") and wider in message and "does not fit" in message
    assert "init_filters=8" in message
    assert not (tmp_path / "jobs" / EVAL).exists()


@pytest.mark.parametrize(
    "job, models, flags, message",
    [
        (EVAL, [], [], "name each model file with --model"),
        (EVAL, ["a/m.pt", "b/m.pt"], [], "two models named m"),
        (EVAL, ["m.pt"], ["--rounds", "3"], "num_rounds do not apply"),
        (EVAL, ["m.pt"], ["--resume-from", "run"], "--resume-from resumes a training run"),
        ("brats_fedavg", ["m.pt"], [], "brats_fedavg trains its own models"),
    ],
)
def test_models_go_to_brats_eval_only_each_under_its_own_name(tmp_path, job, models, flags, message):
    paths = []
    for model in models:
        os.makedirs(tmp_path / os.path.dirname(model), exist_ok=True)
        paths += ["--model", bare_state_dict(tmp_path / model)]
    with pytest.raises(SystemExit, match=message):
        main(["build-job", job, "--out", str(tmp_path / "jobs"), *TINY_FLAGS, *paths, *flags])


def test_job_scripts_refuse_models_where_they_do_not_belong(tmp_path):
    with pytest.raises(SystemExit, match="brats_eval: .*--model"):
        run_job(job_module(EVAL).recipe, argv=[])
    model = bare_state_dict(tmp_path / "m.pt")
    with pytest.raises(SystemExit, match="brats_fedavg_demo: .*trains its own models"):
        run_job(job_module("brats_fedavg_demo").recipe, argv=["--model", model])


def test_job_script_exports_what_build_job_writes(tmp_path):
    model = bare_state_dict(tmp_path / "m.pt")
    script = os.path.join(REPO, "jobs", EVAL, "job.py")
    flags = ["--model", model, *TINY_FLAGS]
    done = subprocess.run(
        [sys.executable, script, "--export", "--export-dir", str(tmp_path / "exported"), *flags],
        capture_output=True,
        text=True,
        cwd=str(tmp_path),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    built = build_job(EVAL, str(tmp_path / "built"), {"models": [model], "training": TINY_TRAINING})
    assert configs(tmp_path / "exported" / EVAL) == configs(built)
    assert (tmp_path / "exported" / EVAL / "app" / "config" / "models" / "m.pt").is_file()


def test_the_report_shows_given_models_in_place_of_global_ones():
    def scores(dice, n):
        return {**{m: dice for m in DICE_METRICS}, MEAN_DICE: dice, N_CASES: n, "split": "testing"}

    results = {"site-1": {"SRV_a": scores(0.6, 1), "SRV_b": scores(0.2, 1)}, "site-2": {"SRV_a": scores(0.3, 2)}}
    report = build_report(results)
    assert report["sites"] == SITES and [row["model"] for row in report["models"]] == ["SRV_a", "SRV_b"]
    a, b = report["models"]
    assert (a["label"], a["short"]) == ("given model a", "a") and a["average"][MEAN_DICE] == pytest.approx(0.4)
    assert b["sites"]["site-2"] is None and report["warnings"] == [
        "no result of SRV_b on site-2: shown as missing, left out of the average"
    ]
    assert not report["lost_sites"]


@pytest.mark.slow
def test_given_models_are_scored_on_every_site_without_training(tmp_path):
    # a tiny model trained centrally for two steps, and the same model under a second name
    site_data = tiny_sites(str(tmp_path), sizes=((2, 1, 1), (2, 1, 2)))
    central = tmp_path / "central"
    site = site_data["site-1"]
    train_central(site["data_root"], site["datalist"], str(central), TrainSettings.from_dict(TINY_TRAINING), 1, steps=2)
    trained = str(central / BEST_MODEL)
    again = shutil.copyfile(trained, tmp_path / "again.pt")
    job = build_job(EVAL, str(tmp_path / "jobs"), {"models": [trained, again], "training": TINY_TRAINING})
    workspace = str(tmp_path / "sim")
    run_simulator(job, workspace, SITES, 2, write_site_settings(str(tmp_path / "sites.json"), site_data), quiet=True)

    results = json.load(open(glob.glob(f"{workspace}/server/**/{RESULTS_FILE}", recursive=True)[0]))
    names = ["SRV_again", "SRV_best_model"]
    assert set(results) == set(SITES) and all(sorted(r) == names for r in results.values())
    report = write_report(workspace)
    assert [row["model"] for row in report["models"]] == names and report["sites"] == SITES
    assert report["split"] == "testing" and report["cases"] == {"site-1": 1, "site-2": 2}
    again_row, trained_row = report["models"]
    assert trained_row["label"] == "given model best_model"
    for row in report["models"]:
        per_site, average = row["sites"], row["average"]
        assert all(per_site[s] is not None for s in SITES)
        for key in DICE_METRICS + (MEAN_DICE,) + HD95_METRICS + SENSITIVITY_METRICS:
            by_hand = (per_site["site-1"][key] * 1 + per_site["site-2"][key] * 2) / 3
            assert average[key] == pytest.approx(by_hand)
        assert average[N_CASES] == 3
    assert again_row["sites"] == trained_row["sites"]  # one model under two names: the same scores
    assert "## given model best_model" in report["markdown"] and "Warnings" not in report["markdown"]

    # no training: the server assigned the validate task only, once per model and site; no site kept a local model
    server_log = open(os.path.join(workspace, "server", "log.txt")).read()
    assigned = re.findall(r"assigned task to client (\S+): name=(\w+)", server_log)
    assert sorted(assigned) == sorted([(site, "validate") for site in SITES] * 2)
    assert not glob.glob(f"{workspace}/**/best_local_model.pt", recursive=True)

"""Real simulator runs of a tiny job with two sites on different data roots.

The two-round run exports the job with ``build_job`` and runs it as the product does; the one-round
run exports it with ``jobs/brats_fedavg_demo/job.py --export`` and runs it with ``nvflare simulator``.
"""

import glob
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from builders import TINY_FLAGS, TINY_TRAINING, write_site
from conftest import REPO
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from fedbrats.evaluation.learning_curves import read_scalars
from fedbrats.evaluation.report import BEST_GLOBAL, FINAL_GLOBAL, write_report
from fedbrats.federation.build_job import build_job
from fedbrats.runners.quickstart import segment_and_score
from fedbrats.runners.simulate import run_simulator, simulator_log
from fedbrats.runtime.constants import (
    DICE_METRICS,
    HD95_METRICS,
    PER_CASE,
    SCORE_METRICS,
    SENSITIVITY_METRICS,
    SPECIFICITY_METRICS,
)
from fedbrats.runtime.fl.model_selector import SELECTION_FILE
from fedbrats.runtime.fl.site_data import SITES_ENV, write_site_settings
from fedbrats.runtime.model import build_model, load_weights
from fedbrats.runtime.settings import TrainSettings

pytestmark = pytest.mark.slow


SITES = ["site-1", "site-2"]


def export_with_job_script(out_dir, rounds):
    script = os.path.join(REPO, "jobs", "brats_fedavg_demo", "job.py")
    cmd = [sys.executable, script, "--export", "--export-dir", out_dir, "--rounds", str(rounds), *TINY_FLAGS]
    subprocess.run(cmd, check=True, capture_output=True, cwd=os.path.dirname(out_dir), timeout=300)
    return os.path.join(out_dir, "brats_fedavg_demo")


def run_nvflare_simulator(job, workspace, settings):
    """``nvflare simulator`` on an exported job folder as it is; its output goes to the simulator log."""
    nvflare = os.path.join(os.path.dirname(sys.executable), "nvflare")
    env = {**os.environ, SITES_ENV: settings, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}
    cmd = [nvflare, "simulator", job, "-w", workspace, "-c", ",".join(SITES), "-t", "2"]
    with open(simulator_log(workspace), "w") as log:
        done = subprocess.run(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
            timeout=600,
        )
    assert done.returncode == 0, open(simulator_log(workspace)).read()[-3000:]


def run_tiny_job(tmp, rounds, corrupt_site2_test_case=False, job_script=False, layouts=("brats", "brats")):
    """A tiny FedAvg run; ``layouts``: each site's data layout (BraTS or MSD Task01)."""
    site_data = {}
    for k, (site, layout) in enumerate(zip(SITES, layouts)):
        root = os.path.join(tmp, f"data-{site}")
        datalist = write_site(root, n_train=2, n_val=1 + k, n_test=1 + k, name=f"{site}.json", layout=layout)
        site_data[site] = {"data_root": root, "datalist": datalist}
    if corrupt_site2_test_case:
        entry = json.load(open(site_data["site-2"]["datalist"]))["testing"][0]
        with open(os.path.join(site_data["site-2"]["data_root"], entry["image"][0]), "wb") as f:
            f.write(b"corrupt")
    settings = write_site_settings(os.path.join(tmp, "sites.json"), site_data)
    workspace = os.path.join(tmp, "sim")
    if job_script:
        run_nvflare_simulator(export_with_job_script(os.path.join(tmp, "jobs"), rounds), workspace, settings)
    else:
        job = build_job(
            "brats_fedavg_demo", os.path.join(tmp, "jobs"), {"num_rounds": rounds, "training": TINY_TRAINING}
        )
        run_simulator(job, workspace, SITES, 2, settings, quiet=True)
    return workspace, site_data


@pytest.fixture(scope="module")
def two_round_run(tmp_path_factory):
    return run_tiny_job(str(tmp_path_factory.mktemp("fl")), rounds=2, layouts=("brats", "msd"))  # site-2: MSD Task01


def test_global_models_are_saved_and_load(two_round_run):
    workspace, _ = two_round_run
    server = os.path.join(workspace, "server", "simulate_job", "app_server")
    for name in ("FL_global_model.pt", "best_FL_global_model.pt"):
        load_weights(build_model(TrainSettings.from_dict(TINY_TRAINING)), os.path.join(server, name))
    selection = json.load(open(os.path.join(server, SELECTION_FILE)))
    assert [h["round"] for h in selection["history"]] == [1, 2]  # round 2 is the final global model
    assert all(h["complete"] for h in selection["history"]) and selection["best_sites"] == SITES
    best = max(selection["history"], key=lambda h: h["score"])
    assert (selection["best_round"], selection["best_score"]) == (best["round"], best["score"])
    for h in selection["history"]:
        assert set(h["sites"]) == set(SITES) and h["sites"]["site-2"]["n_cases"] == 2
        expected = sum(s["mean_dice"] * s["n_cases"] for s in h["sites"].values()) / 3
        assert h["score"] == pytest.approx(expected)


def test_cross_site_results_cover_every_model_and_site(two_round_run):
    workspace, _ = two_round_run
    results = json.load(open(glob.glob(f"{workspace}/server/simulate_job/cross_site_val/cross_val_results.json")[0]))
    assert set(results) == set(SITES)
    for site, cases in (("site-1", 1), ("site-2", 2)):
        assert set(results[site]) == {FINAL_GLOBAL, BEST_GLOBAL, "site-1", "site-2"}
        for metrics in results[site].values():
            assert metrics["n_cases"] == cases and metrics["split"] == "testing"
            assert all(0.0 <= metrics[m] <= 1.0 for m in DICE_METRICS)
            assert all(0.0 <= metrics[m] <= 373.13 for m in HD95_METRICS)
            assert all(0.0 <= metrics[m] <= 1.0 for m in SENSITIVITY_METRICS + SPECIFICITY_METRICS)
            per_case = metrics[PER_CASE]  # numbers only, one per case, each list sorted: no case order
            assert set(per_case) == set(SCORE_METRICS)
            assert all(len(v) == cases and all(isinstance(x, float) for x in v) for v in per_case.values())
            assert all(v == sorted(v) for v in per_case.values())
            assert all(metrics[f"cases_with_{r}"] == cases for r in ("tc", "wt", "et"))  # every tiny case has all
            assert sum(per_case["hd95_wt"]) / cases == pytest.approx(metrics["hd95_wt"])
    shared = os.listdir(f"{workspace}/server/simulate_job/cross_site_val/model_shareables")
    assert {"site-1", "site-2"} <= set(shared)


def test_sites_keep_best_local_models_and_tensorboard_logs(two_round_run):
    workspace, site_data = two_round_run
    for site in SITES:
        app = os.path.join(workspace, site, "simulate_job", f"app_{site}")
        checkpoint = torch.load(os.path.join(app, "best_local_model.pt"), weights_only=False)
        events = EventAccumulator(os.path.join(app, "tb_events"))
        events.Reload()
        local = {e.step: e.value for e in events.Scalars("local_model/mean_dice")}
        assert sorted(local) == [0, 1]  # the local model of each round, scored by the site
        best_round = max(local, key=lambda r: (local[r], -r))  # the first of equal scores is kept
        assert checkpoint["round"] == best_round
        assert checkpoint["metrics"]["mean_dice"] == pytest.approx(local[best_round])
    log = open(simulator_log(workspace)).read()
    for site in SITES:
        assert f"data root {site_data[site]['data_root']}" in log


def test_the_server_records_every_site_s_figures(two_round_run, tmp_path):
    workspace, _ = two_round_run
    recorded = os.path.join(workspace, "server", "simulate_job", "tb_events")
    assert sorted(os.listdir(recorded)) == SITES  # one TensorBoard run per site, written by FLARE's receiver
    for site in SITES:
        own = read_scalars(os.path.join(workspace, site, "simulate_job", f"app_{site}", "tb_events"))
        assert read_scalars(os.path.join(recorded, site)) == own
        assert {"train/loss_segmentation", "train/loss_vae", "train/step_seconds", "global_model/dice_et"} <= set(own)
    # a POC or production result holds the server's folder only: the report's curves come from it
    server_only = shutil.copytree(os.path.join(workspace, "server"), os.path.join(tmp_path, "result"))
    curves = write_report(server_only, os.path.join(tmp_path, "report"))["curves"]["sites"]
    assert sorted(curves) == SITES
    for site in SITES:
        assert [r for r, _ in curves[site]["local"]] == [1, 2] and [r for r, _ in curves[site]["loss"]] == [1, 2]


def test_report_average_is_case_weighted(two_round_run, tmp_path):
    workspace, _ = two_round_run
    report = write_report(workspace, str(tmp_path))
    results = json.load(open(report["source"]))
    for row in report["models"]:
        for metric in SCORE_METRICS:
            expected = (results["site-1"][row["model"]][metric] * 1 + results["site-2"][row["model"]][metric] * 2) / 3
            assert row["average"][metric] == pytest.approx(expected)
    assert not report["warnings"] and (tmp_path / "report.md").is_file()
    for site in SITES:  # global model validated in rounds 0-1 (TensorBoard) and 1-2 (server), local models 1-2
        curves = report["curves"]["sites"][site]
        assert [r for r, _ in curves["global"]] == [0, 1, 2]
        assert [r for r, _ in curves["local"]] == [r for r, _ in curves["loss"]] == [1, 2]
    assert [r for r, _ in report["curves"]["server"]] == [1, 2]
    markdown = (tmp_path / "report.md").read_text()
    assert set(report["figures"]) == {"heatmap", "curves", "dice_boxes"}
    for name in report["figures"].values():
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG" and f"]({name})" in markdown


def test_quickstart_segments_a_test_case_per_site_and_scores_it(two_round_run, tmp_path, capsys):
    workspace, site_data = two_round_run
    model = os.path.join(workspace, "server", "simulate_job", "app_server", "FL_global_model.pt")
    evaluation = segment_and_score(model, workspace, site_data, str(tmp_path))
    assert [c["case"] for c in evaluation["cases"]] == ["Case_004", "Case_005"]  # the first test case of each site
    assert sorted(os.listdir(tmp_path / "predictions")) == ["Case_004_seg.nii.gz", "Case_005_seg.nii.gz"]
    assert (tmp_path / "evaluation" / "summary.md").is_file() and (tmp_path / "evaluation" / "evaluation.csv").is_file()
    assert "[infer] 2 segmentation(s)" in capsys.readouterr().out


def test_failed_evaluation_shows_as_a_gap(tmp_path):
    workspace, _ = run_tiny_job(str(tmp_path), rounds=1, corrupt_site2_test_case=True, job_script=True)
    report = write_report(workspace, str(tmp_path / "report"))
    for row in report["models"]:
        assert row["sites"]["site-2"] is None
        assert row["average"]["n_cases"] == 1 and row["average"]["dice_tc"] == pytest.approx(
            row["sites"]["site-1"]["dice_tc"]
        )
    assert len(report["warnings"]) == 4
    assert "| site-2 | missing |" in (tmp_path / "report" / "report.md").read_text()
    assert "Case_005_t1ce.nii.gz" in open(simulator_log(workspace)).read()

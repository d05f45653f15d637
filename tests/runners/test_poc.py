"""The complete POC round trip: separate server and site processes, a submitted job, the report."""

import glob
import json
import os
import signal
import subprocess
import sys

import pytest
from builders import TINY_TRAINING, write_site

from fedbrats.cli import main
from fedbrats.evaluation.report import BEST_GLOBAL, FINAL_GLOBAL
from fedbrats.federation.catalog import job_recipe
from fedbrats.prepare import synthetic
from fedbrats.runners.poc import PocSystem, listening_ports, make_site_data, poc_job_values, round_trip
from fedbrats.runtime.constants import DICE_METRICS

SITES = ["site-1", "site-2"]


@pytest.fixture(scope="module")
def poc_run(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("poc"))
    site_data = {}
    for k, site in enumerate(SITES):
        root = os.path.join(tmp, f"hospital-{k + 1}")
        site_data[site] = {
            "data_root": root,
            "datalist": write_site(root, n_train=2, n_val=1, n_test=1 + k, name="list.json"),
        }
    root = os.path.join(tmp, "poc")
    overrides = {"num_rounds": 2, "training": TINY_TRAINING}
    try:  # a free port: another POC system may hold FLARE's 8002
        yield root, round_trip(root, overrides=overrides, site_data=site_data, timeout=600, port=None)
    finally:
        PocSystem(root, SITES, port=None).stop(grace=5)


@pytest.mark.slow
def test_report_holds_every_model_and_site_with_weighted_average(poc_run):
    _, report = poc_run
    assert [r["model"] for r in report["models"]] == [FINAL_GLOBAL, BEST_GLOBAL, "site-1", "site-2"]
    assert report["cases"] == {"site-1": 1, "site-2": 2} and not report["warnings"]
    for row in report["models"]:
        s1, s2 = row["sites"]["site-1"], row["sites"]["site-2"]
        for metric in DICE_METRICS:
            assert row["average"][metric] == pytest.approx((s1[metric] + 2 * s2[metric]) / 3)
    assert report["models"][0]["label"] == "global model after 2 rounds"


@pytest.mark.slow
def test_sites_read_their_own_data_roots(poc_run):
    root, report = poc_run
    for site, data in report["site_data"].items():
        logs = glob.glob(os.path.join(root, "poc", "*", "prod_*", site, report["job_id"], "log.txt"))
        assert logs, site
        assert f"data root {data['data_root']}," in open(logs[0]).read()
    assert report["site_data"]["site-1"]["data_root"] != report["site_data"]["site-2"]["data_root"]
    assert glob.glob(os.path.join(report["result_dir"], "**", "cross_val_results.json"), recursive=True)


@pytest.mark.slow
def test_the_downloaded_result_alone_gives_every_site_s_curves(poc_run):
    _, report = poc_run
    # the sites' own TensorBoard events stay at the sites; the server's receiver recorded a copy of their figures
    assert not glob.glob(os.path.join(report["result_dir"], "**", "app_site-*"), recursive=True)
    recorded = glob.glob(os.path.join(report["result_dir"], "**", "tb_events", "site-*"), recursive=True)
    assert sorted(os.path.basename(p) for p in recorded) == SITES
    for site in SITES:
        curves = report["curves"]["sites"][site]
        assert [r for r, _ in curves["local"]] == [1, 2] and [r for r, _ in curves["loss"]] == [1, 2]
        assert [r for r, _ in curves["global"]] == [0, 1, 2]


@pytest.mark.slow
def test_nothing_left_running(poc_run):
    root, report = poc_run
    assert PocSystem(root, SITES, port=report["port"]).our_processes() == []
    assert report["port"] not in listening_ports()


def test_synthetic_data_of_three_sites_with_their_grades(tmp_path, monkeypatch):
    written = []
    monkeypatch.setattr(synthetic, "write_sites", lambda root, sites, cases, size: written.append((root, sites, cases)))
    data = make_site_data(str(tmp_path), ["site-1", "site-2:HGG", "hospital-3:mix=0.5:noisy"], 4)
    assert list(data) == ["site-1", "site-2", "hospital-3"]
    assert data["hospital-3"] == {
        "data_root": str(tmp_path / "hospital-3"),
        "datalist": str(tmp_path / "hospital-3" / "datalists" / "hospital-3.json"),
    }
    assert [(root, [str(s) for s in sites], n) for root, sites, n in written] == [
        (str(tmp_path / "site-1"), ["site-1:HGG"], 4),
        (str(tmp_path / "site-2"), ["site-2:HGG"], 4),
        (str(tmp_path / "hospital-3"), ["hospital-3:mix=0.5:noisy"], 4),
    ]


def test_poc_takes_sites_or_site_data_not_both(tmp_path):
    with pytest.raises(SystemExit, match="give --sites .* or --site-data"):
        main(["poc", "--root", str(tmp_path), "--sites", "site-1", "--site-data", f"site-1={tmp_path}"])
    with pytest.raises(SystemExit, match="the grade must be"):
        main(["poc", "--root", str(tmp_path), "--sites", "site-1:XYZ"])


@pytest.mark.slow
def test_stop_ends_only_the_processes_the_system_started(tmp_path):
    system = PocSystem(str(tmp_path / "poc-run"), SITES)
    log = os.path.join(system.root, "server", "log.txt")
    os.makedirs(os.path.dirname(log))
    open(log, "w").close()
    sleeper = [sys.executable, "-c", "import time; time.sleep(300)"]
    started = subprocess.Popen(sleeper + [system.root], env=system.env)  # as FLARE's services inherit it
    # a wrapper that started the product and a user's process on a log, both naming the folder: neither is ours
    wrapper = subprocess.Popen(["timeout", "300", *sleeper, system.root])
    follower = subprocess.Popen(["tail", "-f", log], cwd=system.root)
    try:
        assert system.our_processes() == [started.pid]
        system.stop(grace=2)
        assert started.wait(timeout=10) == -signal.SIGTERM  # ended by stop's SIGTERM, not by itself
        assert system.our_processes() == []
        assert wrapper.poll() is None and follower.poll() is None
    finally:
        for proc in (started, wrapper, follower):
            proc.kill()
            proc.wait()


def test_poc_exits_1_naming_why_the_job_did_not_finish_and_takes_min_clients(tmp_path, monkeypatch, capsys):
    from fedbrats.runners import poc

    failure = {
        "status": "FINISHED:EXECUTION_EXCEPTION",
        "round": 2,
        "rounds_done": 1,
        "planned": 3,
        "reason": "alive sites 2 < required min_clients 3 (site-3 lost)",
    }
    given = []

    def round_trip(root, job, overrides, *args):
        given.append(overrides)
        return {
            "failure": failure if overrides["min_clients"] == 3 else None,
            "job_id": "job-1",
            "seconds": 1.0,
            "paths": [],
        }

    monkeypatch.setattr(poc, "round_trip", round_trip)
    sites = ["--sites", "site-1", "site-2", "site-3"]
    assert main(["poc", "--root", str(tmp_path), *sites]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "fedbrats poc: job job-1 did not finish normally: aborted in round 2 of 3: alive sites 2 < required "
        "min_clients 3 (site-3 lost) (FINISHED:EXECUTION_EXCEPTION)"
    )
    assert main(["poc", "--root", str(tmp_path), *sites, "--min-clients", "2"]) == 0
    assert given[0]["min_clients"] == 3 and "wait_time_after_min_received" not in given[0]  # every site: as before
    assert given[1]["min_clients"] == 2 and given[1]["wait_time_after_min_received"] == poc.WAIT_AFTER_MIN
    with pytest.raises(SystemExit, match="--min-clients must be between 1 and the 3 sites"):
        main(["poc", "--root", str(tmp_path), *sites, "--min-clients", "4"])
    with pytest.raises(SystemExit):
        main(["poc", "--help"])
    assert "--min-clients N" in capsys.readouterr().out


def test_a_poc_system_with_gpus_asks_for_one_per_site_in_the_jobs_meta(tmp_path):
    values = poc_job_values({"num_rounds": 2}, SITES, gpu=["0", "1"])
    assert values["gpus"] == {"site-1": 1, "site-2": 1} and values["min_clients"] == 2
    assert "gpus" not in poc_job_values({}, SITES)
    recipe = job_recipe("brats_fedavg_demo", {**values, "training": TINY_TRAINING})
    recipe.export(str(tmp_path))
    meta = json.load(open(tmp_path / "brats_fedavg_demo" / "meta.json"))
    assert meta["resource_spec"] == {"site-1": {"num_of_gpus": 1}, "site-2": {"num_of_gpus": 1}}

"""``fedbrats poc`` with 3 tiny sites, every process of site-3 killed during round 2 of 3. With ``--min-clients 3``
FLARE aborts the job: the command exits 1 with a line naming why and when, and the report says the job was aborted,
how to resume it, and calls only site-3 lost. With ``--min-clients 2`` the job finishes: exit 0, site-3 lost, the
others not."""

import io
import json
import os
import threading
from contextlib import redirect_stderr, redirect_stdout

import pytest
from builders import TINY_TRAINING, write_site
from poc_helpers import kill_site_during_round

from fedbrats.cli import main
from fedbrats.federation.catalog import job_recipe
from fedbrats.runners import poc
from fedbrats.runners.poc import PocSystem
from fedbrats.runtime.run_state import read_state

pytestmark = pytest.mark.slow

SITES = ["site-1", "site-2", "site-3"]
LOST = "site-3"
ROUNDS = 3
REASON = "alive sites 2 < required min_clients 3 (site-3 lost)"


def run_losing_a_site(tmp, min_clients):
    """``fedbrats poc`` (tiny training, a free port) on 3 tiny sites, site-3 killed in round 2; what it printed and
    returned, its report."""
    site_data = []
    for site in SITES:
        root = os.path.join(tmp, f"data-{site}")
        site_data.append(f"{site}={root},{write_site(root, name=f'{site}.json')}")
    root = os.path.join(tmp, "poc")
    argv = ["poc", "--root", root, "--rounds", str(ROUNDS), "--min-clients", str(min_clients), "--timeout", "600"]
    system = PocSystem(root, SITES, port=None)
    killed = {}
    killer = threading.Thread(target=lambda: killed.update(at=kill_site_during_round(system, LOST, 2)), daemon=True)
    out, err = io.StringIO(), io.StringIO()
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(poc, "job_recipe", lambda job, values: job_recipe(job, {**values, "training": TINY_TRAINING}))
            patch.setattr(poc, "PocSystem", lambda root, sites, port=None: PocSystem(root, sites, port=None))
            killer.start()
            with redirect_stdout(out), redirect_stderr(err):
                code = main([*argv, "--site-data", *site_data])
        killer.join(timeout=5)
    finally:
        if system.our_processes():
            system.stop(grace=5)
    printed = out.getvalue() + err.getvalue()
    print(
        f"fedbrats poc --min-clients {min_clients}: exit {code}; last lines:\n" + "\n".join(printed.splitlines()[-8:])
    )
    with open(os.path.join(root, "report", "report.json")) as f:
        report = json.load(f)
    return {
        "code": code,
        "out": out.getvalue(),
        "err": err.getvalue(),
        "report": report,
        "killed": killed,
        "poc": system,
    }


@pytest.fixture(scope="module")
def aborted(tmp_path_factory):
    return run_losing_a_site(str(tmp_path_factory.mktemp("aborted")), min_clients=3)


@pytest.fixture(scope="module")
def tolerated(tmp_path_factory):
    return run_losing_a_site(str(tmp_path_factory.mktemp("tolerated")), min_clients=2)


def test_an_aborted_job_exits_1_naming_why_and_when(aborted):
    assert aborted["killed"], "site-3 was not killed in round 2"
    assert aborted["code"] == 1
    last = aborted["err"].strip().splitlines()[-1]
    assert last.startswith("fedbrats poc: job ") and last.endswith(
        f"did not finish normally: aborted in round 2 of {ROUNDS}: {REASON} (FINISHED:EXECUTION_EXCEPTION)"
    ), last


def test_the_report_of_the_aborted_job_says_so_names_only_the_dead_site_lost_and_how_to_resume(aborted):
    report = aborted["report"]
    assert report["aborted"]["reason"] == REASON and report["aborted"]["round"] == 2
    assert list(report["lost_sites"]) == [LOST]
    assert report["ended"] == f"**The job was aborted** in round 2 of {ROUNDS}, after 1 completed round: {REASON}."
    assert report["not_evaluated"].endswith("site-1 and site-2 were alive until the abort: not lost.")
    folder = report["resume"].split("--resume-from ")[1].split("`")[0]
    assert report["resume"].startswith("Resume the run from round 2 (the global model of round 1)")
    assert f"`python jobs/brats_fedavg_demo/job.py --env poc --resume-from {folder}`" in report["resume"]
    assert "add `--sites site-1 site-2 --min-clients 2`" in report["resume"]
    assert read_state(folder)["rounds_done"] == 1  # the state the command resumes from is there
    assert "to resume it, start this POC system again" in aborted["out"]


def test_a_job_that_tolerates_the_loss_finishes_and_names_only_the_dead_site_lost(tolerated):
    assert tolerated["killed"], "site-3 was not killed in round 2"
    assert tolerated["code"] == 0, tolerated["err"][-2000:]
    report = tolerated["report"]
    assert report["aborted"] is None and list(report["lost_sites"]) == [LOST]
    assert report["ended"] == f"The run ended after its {ROUNDS} rounds."
    for row in report["models"]:
        assert row["sites"][LOST] is None and row["sites"]["site-1"] and row["sites"]["site-2"]
    assert "did not finish normally" not in tolerated["out"] + tolerated["err"]


@pytest.mark.parametrize("run", ["aborted", "tolerated"])
def test_nothing_left_running(run, request):
    system = request.getfixturevalue(run)["poc"]
    assert system.our_processes() == []

"""``fedbrats poc`` with 3 tiny sites, every process of site-3 killed during round 2 of 3: the site's machine gone.
With ``--min-clients 3`` FLARE aborts the job: the command exits 1 with a line naming why and when, and the report says
the job was aborted, how to resume it, and calls only site-3 lost. With ``--min-clients 2`` the job finishes: exit 0,
the other two sites train every round, the report shows site-3 as missing and says why, and the rounds and the
evaluation after the loss wait on the dead site for at most a minute in all."""

import io
import json
import os
import re
import threading
import time
from contextlib import redirect_stderr, redirect_stdout
from datetime import datetime

import pytest
from builders import TINY_TRAINING, write_site
from poc_helpers import kill_site_during_round, read, trained_rounds

from fedbrats.cli import main
from fedbrats.federation.catalog import job_recipe
from fedbrats.runners import poc
from fedbrats.runners.poc import HEART_BEAT_TIMEOUT, PocSystem, listening_ports
from fedbrats.runtime.run_state import read_state

pytestmark = pytest.mark.slow

SITES = ["site-1", "site-2", "site-3"]
LOST = "site-3"
ROUNDS = 3
REASON = "alive sites 2 < required min_clients 3 (site-3 lost)"
MAX_LOSS = 60
STAMP = r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) - "


def waits_after_last_result(log, since):
    """Each server task that ended after ``since``: (task, seconds from the last site result it got to its end)."""
    waits, last_result = [], None
    for line in log.splitlines():
        stamp = re.match(STAMP, line)
        if not stamp:
            continue
        t = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        if "finished processing client result" in line:
            last_result = t
        ended = re.search(r"task (\w+) exit with status", line)
        if ended and t > since:
            waits.append((ended.group(1), t - max(last_result or t, since)))
    return waits


def on_a_free_port(root, sites, made):
    """The command's POC system on a free port, kept in ``made``."""
    made.append(PocSystem(root, sites, port=None))
    return made[-1]


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
    started = time.time()
    killed, ran = {}, []
    killer = threading.Thread(target=lambda: killed.update(at=kill_site_during_round(system, LOST, 2)), daemon=True)
    out, err = io.StringIO(), io.StringIO()
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(poc, "job_recipe", lambda job, values: job_recipe(job, {**values, "training": TINY_TRAINING}))
            patch.setattr(poc, "PocSystem", lambda root, sites, port=None: on_a_free_port(root, sites, ran))
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
    report["markdown"] = read(os.path.join(root, "report", "report.md"))
    [job_id] = os.listdir(os.path.join(root, "results"))
    return {
        "code": code,
        "out": out.getvalue(),
        "err": err.getvalue(),
        "report": report,
        "killed": killed,
        "poc": system,
        "port": ran[0].port,
        "job_id": job_id,
        "server_log": read(os.path.join(root, "results", job_id, "workspace", "log.txt")),
        "seconds": time.time() - started,
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


def test_after_the_loss_the_other_sites_train_every_round(tolerated):
    job_id, system = tolerated["job_id"], tolerated["poc"]
    for site in ("site-1", "site-2"):
        assert trained_rounds(system, site, job_id) == list(range(1, ROUNDS + 1))
    assert trained_rounds(system, LOST, job_id) == [1]


def test_the_report_shows_the_lost_site_as_missing_and_says_why(tolerated):
    report = tolerated["report"]
    assert report["cases"][LOST] is None
    for row in report["models"]:
        assert row["model"] != LOST and row["average"]["n_cases"] == 2  # site-1 and site-2, one testing case each
    markdown = report["markdown"]
    assert "Sites lost during the run" in markdown
    assert (
        f"{LOST} took part in the job but has no result in the cross-site evaluation: lost during the run" in markdown
    )
    assert f"| {LOST} | missing | missing | missing | missing |" in markdown
    result = os.path.join(tolerated["poc"].root, "results", tolerated["job_id"])
    with open(os.path.join(result, "workspace", "cross_site_val", "cross_val_results.json")) as f:
        assert LOST not in json.load(f)


def test_the_loss_costs_at_most_a_minute(tolerated):
    waits = waits_after_last_result(tolerated["server_log"], tolerated["killed"]["at"])
    lost = sum(w for _, w in waits)
    detail = ", ".join(f"{task} {w:.1f} s" for task, w in waits)
    print(f"time waited on {LOST} after its loss: {lost:.1f} s ({detail}); whole run {tolerated['seconds']:.0f} s")
    assert "is deemed disconnected" in tolerated["server_log"]
    assert lost <= MAX_LOSS, detail
    assert max(w for _, w in waits) <= HEART_BEAT_TIMEOUT + 25, detail


@pytest.mark.parametrize("run", ["aborted", "tolerated"])
def test_nothing_left_running(run, request):
    ended = request.getfixturevalue(run)
    assert ended["poc"].our_processes() == []
    assert ended["port"] not in listening_ports()

"""Jobs of a live POC system watched and stopped from the admin side. ``fedbrats status`` reads a running job through
FLARE's admin API. A job aborted (``nvflare job abort``) while the sites train: every site stops within one local step
of the abort reaching it, nothing is sent, and the job's processes end; the POC system itself keeps running until it
is stopped, and then nothing is left."""

import json
import re
import subprocess
import sys
import time

import pytest
from builders import TINY_TRAINING, write_site
from poc_helpers import job_log, processes_naming, wait_for

from fedbrats.cli import main
from fedbrats.federation.catalog import job_recipe
from fedbrats.runners import status
from fedbrats.runners.poc import PocSystem, listening_ports
from fedbrats.runners.status import POC_ADMIN, snapshot, summarize

pytestmark = pytest.mark.slow


SITES = ["site-1", "site-2"]
JOB = "brats_fedavg_demo"
LOCAL_STEPS = 100000
"""Far more than the sites take before the abort: the round could not end on its own during the test."""
REACH = 30
"""Seconds from starting ``nvflare job abort`` to a site's training loop stopping: mostly the command's own start
(Python imports, login), 10 s on a loaded 2-core machine; server to site to job takes about 2 s."""
STOPPED = (
    r"round 1/2: job aborted: training stopped after (\d+) steps \(([\d.]+) s per step\), ([\d.]+) s after the "
    r"abort reached the site"
)
STAMP = r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) - .*"
JOB_END = REACH + 30
"""Seconds from the admin's abort to the last process of the job ending: the abort reaching the sites, then the job's
processes finishing the step in flight and closing down."""


def logged_at(log, pattern):
    """The time of the first log line matching ``pattern`` and the match, or None."""
    for line in log.splitlines():
        found = re.search(pattern, line)
        stamp = re.match(STAMP, line)
        if found and stamp:
            day = time.mktime(time.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S"))
            return day + int(stamp.group(2)) / 1000, found
    return None


@pytest.fixture(scope="module")
def live_poc(tmp_path_factory):
    """A started POC system of 2 tiny sites, site-1 with one validation case and site-2 with two."""
    tmp = tmp_path_factory.mktemp("live")
    poc = PocSystem(str(tmp / "poc"), SITES, port=None)  # a free port: another POC system may hold 8002
    try:
        poc.prepare()
        for k, site in enumerate(SITES):
            root = str(tmp / f"data-{site}")
            poc.set_site_data(site, root, write_site(root, n_val=1 + k, seed=10 * k, name=f"{site}.json"))
        poc.start()
        yield poc
    finally:
        if poc.our_processes():
            poc.stop(grace=5)


def test_status_of_a_live_poc_job(live_poc, capsys):
    poc = live_poc
    values = {"num_rounds": 12, "training": TINY_TRAINING, "sites": SITES, "min_clients": len(SITES)}
    job_id = poc.submit(job_recipe(JOB, values))
    kit = poc.participant_dir(POC_ADMIN)
    with status.admin_session(kit) as session:
        deadline = time.time() + 300
        summary = summarize(snapshot(session, job_id))
        while not summary["dice"]["last"] and time.time() < deadline:
            time.sleep(1)
            summary = summarize(snapshot(session, job_id))
    assert summary["job"]["id"] == job_id and summary["job"]["status"] == "RUNNING", summary
    assert summary["round"]["planned"] == 12 and summary["round"]["done"] >= 1
    assert [(s["site"], s["connected"]) for s in summary["sites"]] == [("site-1", True), ("site-2", True)]
    assert all(0 <= s["last_heard"] < 60 for s in summary["sites"])
    last = summary["dice"]["last"]
    assert last["round"] >= 1 and last["cases"] == 3 and last["sites"] == SITES
    assert all(0 <= last[k] <= 1 for k in ("dice_tc", "dice_wt", "dice_et", "mean_dice"))
    assert summary["dice"]["best"] is not None and summary["time"]["per_round"] > 0

    capsys.readouterr()
    assert main(["status", "--poc-root", poc.root]) == 0
    text = capsys.readouterr().out
    with capsys.disabled():
        print(f"\n$ fedbrats status\n{text}")
    assert text.startswith(f"job {job_id} ({JOB}): RUNNING for ")
    assert "sites: 2 of 2 connected" in text and "(3 cases)" in text
    assert main(["status", "--startup-kit", kit, "--job", job_id[:8], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["job"]["id"] == job_id

    unknown = [sys.executable, "-m", "fedbrats.cli", "status", "--poc-root", poc.root, "--job", "no-such-job"]
    done = subprocess.run(unknown, capture_output=True, text=True, timeout=120)
    with capsys.disabled():
        print(f"$ fedbrats status --job no-such-job\n{done.stdout}{done.stderr}(exit {done.returncode})")
    assert done.returncode == 2 and done.stdout == ""
    message = f"fedbrats status: no job no-such-job on the server at localhost:{poc.port}"
    assert message in done.stderr.splitlines()
    with status.admin_session(kit) as session:
        session.abort_job(job_id)
    assert "ABORTED" in poc.wait(job_id, timeout=120)


@pytest.fixture(scope="module")
def aborted(live_poc):
    poc = live_poc
    try:
        training = {**TINY_TRAINING, "local_steps": LOCAL_STEPS}
        job_id = poc.submit(job_recipe(JOB, {"num_rounds": 2, "training": training, "sites": SITES}))
        training_line = f"round 1/2 training starts: {LOCAL_STEPS} local steps"
        wait_for(lambda: all(training_line in job_log(poc, s, job_id) for s in SITES), 240, "the sites' training")
        time.sleep(3)  # some steps into the round
        abort_at = time.time()
        poc.nvflare("job", "abort", job_id, "--force", timeout=120)
        ended = poc.wait(job_id, timeout=120)
        job_ended = wait_for(
            lambda: not processes_naming(job_id, poc.our_processes()) and time.time(), 60, "the job's processes"
        )
        services = len(poc.our_processes())
        logs = {s: job_log(poc, s, job_id) for s in SITES}
        poc.stop(grace=5)
        yield {
            "poc": poc,
            "status": ended,
            "abort_at": abort_at,
            "job_ended": job_ended,
            "services": services,
            "logs": logs,
        }
    finally:
        if poc.our_processes():
            poc.stop(grace=5)


def test_the_job_ends_aborted(aborted):
    assert "ABORTED" in aborted["status"], aborted["status"]


@pytest.mark.parametrize("site", SITES)
def test_each_site_stops_training_within_one_step(aborted, site):
    log = aborted["logs"][site]
    found = logged_at(log, STOPPED)
    assert found, log[-3000:]
    at, match = found
    steps, per_step, after_arrival = int(match.group(1)), float(match.group(2)), float(match.group(3))
    assert 0 < steps < LOCAL_STEPS
    assert after_arrival <= 2 * per_step  # the step in flight when the abort arrived, and no further one
    assert at - aborted["abort_at"] <= REACH
    assert "global model val Dice" not in log  # no round finished, nothing was sent


def test_the_jobs_processes_end_and_the_system_stays_up(aborted):
    assert aborted["job_ended"] - aborted["abort_at"] <= JOB_END, "the job's processes outlived the abort"
    assert aborted["services"] > 0  # server and sites still run: the next job can be submitted


def test_nothing_left_running(aborted):
    poc = aborted["poc"]
    assert poc.our_processes() == []
    assert poc.port not in listening_ports()

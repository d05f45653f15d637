"""A site lost in the middle of a run: 3 POC sites, ``min_clients`` 2, site-3's machine gone (every process of the
site killed) during round 2. The other two finish every round, the report shows site-3 as missing and says why,
and the rounds and the evaluation after the loss wait on the dead site for at most a minute in all."""

import json
import os
import re
import time
from datetime import datetime

import pytest
from builders import TINY_TRAINING
from poc_helpers import kill_site_during_round, read, start_with_tiny_sites, trained_rounds

from fedbrats.evaluation.report import write_report
from fedbrats.federation.catalog import job_recipe
from fedbrats.runners.poc import HEART_BEAT_TIMEOUT, PocSystem, listening_ports

pytestmark = pytest.mark.slow


SITES = ["site-1", "site-2", "site-3"]
LOST = "site-3"
ROUNDS = 3
JOB = "brats_fedavg_demo"
WAIT_AFTER_MIN = 60
"""Seconds a round waits for the third site once two have answered: far above the spread of healthy sites."""
MAX_LOSS = 60
STAMP = r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) - "


def timestamp(text):
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def waits_after_last_result(log, since):
    """Each server task that ended after ``since``: (task, seconds from the last site result it got to its end)."""
    waits, last_result = [], None
    for line in log.splitlines():
        stamp = re.match(STAMP, line)
        if not stamp:
            continue
        t = timestamp(stamp.group(1))
        if "finished processing client result" in line:
            last_result = t
        ended = re.search(r"task (\w+) exit with status", line)
        if ended and t > since:
            waits.append((ended.group(1), t - max(last_result or t, since)))
    return waits


@pytest.fixture(scope="module")
def lost_site(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("site_loss"))
    poc = PocSystem(os.path.join(tmp, "poc"), SITES, port=None)  # a free port: another POC system may hold 8002
    started = time.time()
    try:
        start_with_tiny_sites(poc, tmp)
        values = {
            "num_rounds": ROUNDS,
            "training": TINY_TRAINING,
            "sites": SITES,
            "min_clients": 2,
            "wait_time_after_min_received": WAIT_AFTER_MIN,
        }
        job_id = poc.submit(job_recipe(JOB, values))
        killed = kill_site_during_round(poc, LOST, 2, job_id=job_id)
        status = poc.wait(job_id, timeout=600)
        result_dir = poc.download(job_id, os.path.join(tmp, "results"))
        report = write_report(result_dir, os.path.join(tmp, "report"))
        poc.stop(grace=5)
        yield {
            "poc": poc,
            "job_id": job_id,
            "status": status,
            "report": report,
            "result_dir": result_dir,
            "server_log": read(os.path.join(result_dir, "workspace", "log.txt")),
            "killed": killed,
            "seconds": time.time() - started,
        }
    finally:
        if poc.our_processes():
            poc.stop(grace=5)


def test_the_other_sites_finish_every_round(lost_site):
    poc, job_id = lost_site["poc"], lost_site["job_id"]
    assert "FINISHED:COMPLETED" in lost_site["status"], lost_site["status"]
    for site in ("site-1", "site-2"):
        assert trained_rounds(poc, site, job_id) == list(range(1, ROUNDS + 1))
    assert trained_rounds(poc, LOST, job_id) == [1]


def test_the_report_shows_the_lost_site_as_missing_and_says_so(lost_site):
    report = lost_site["report"]
    assert list(report["lost_sites"]) == [LOST]
    assert report["cases"][LOST] is None
    for row in report["models"]:
        assert row["sites"][LOST] is None and row["model"] != LOST
        assert row["average"]["n_cases"] == 2  # site-1 and site-2, one testing case each
    markdown = report["markdown"]
    assert "Sites lost during the run" in markdown
    assert (
        f"{LOST} took part in the job but has no result in the cross-site evaluation: lost during the run" in markdown
    )
    assert f"| {LOST} | missing | missing | missing | missing |" in markdown
    with open(os.path.join(lost_site["result_dir"], "workspace", "cross_site_val", "cross_val_results.json")) as f:
        assert LOST not in json.load(f)


def test_the_loss_costs_at_most_a_minute(lost_site):
    waits = waits_after_last_result(lost_site["server_log"], lost_site["killed"])
    lost = sum(w for _, w in waits)
    detail = ", ".join(f"{task} {w:.1f} s" for task, w in waits)
    print(f"time waited on {LOST} after its loss: {lost:.1f} s ({detail}); whole test {lost_site['seconds']:.0f} s")
    assert "is deemed disconnected" in lost_site["server_log"]
    assert lost <= MAX_LOSS, detail
    assert max(w for _, w in waits) <= HEART_BEAT_TIMEOUT + 25, detail


def test_nothing_left_running(lost_site):
    poc = lost_site["poc"]
    assert poc.our_processes() == []
    assert poc.port not in listening_ports()

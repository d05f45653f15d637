"""A POC server killed in the middle of a run restarts, and the run resumes from the state the server kept."""

import json
import os
import signal
import time

import pytest
from builders import TINY_TRAINING
from poc_helpers import command_line, start_with_tiny_sites, trained_rounds, wait_for

from fedbrats.federation.catalog import job_recipe
from fedbrats.runners.poc import PocSystem, listening_ports
from fedbrats.runtime.run_state import RUN_STATE_FOLDER, STATE_FILE

pytestmark = pytest.mark.slow


SITES = ["site-1", "site-2"]
JOB = "brats_fedavg_demo"
PLANNED = 4


def rounds_done(state_dir):
    try:
        with open(os.path.join(state_dir, STATE_FILE)) as f:
            return json.load(f)["rounds_done"]
    except (OSError, ValueError, KeyError):
        return 0


def server_python_pids(poc):
    """The server's Python processes (server and job), not the start script that restarts the server."""
    server = poc.participant_dir("server")
    pids = []
    for pid in poc.our_processes():
        argv = (command_line(pid) or ([""], ""))[0]
        if "python" in os.path.basename(argv[0]) and any(a.startswith(server) for a in argv):
            pids.append(pid)
    return pids


@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("resume"))
    poc = PocSystem(os.path.join(tmp, "poc"), SITES, port=None)  # a free port: another POC system may hold 8002
    try:
        start_with_tiny_sites(poc, tmp)
        started = time.time()
        values = {"num_rounds": PLANNED, "training": TINY_TRAINING, "sites": SITES, "min_clients": len(SITES)}
        first = poc.submit(job_recipe(JOB, values))
        state_dir = os.path.join(poc.participant_dir("server"), RUN_STATE_FOLDER, first)
        # killed after round 2: the run then has a best global model (round 1's is scored in round 2)
        wait_for(lambda: rounds_done(state_dir) >= 2, 240, "two completed rounds")
        for pid in server_python_pids(poc):
            os.kill(pid, signal.SIGKILL)
        wait_for(lambda: poc.port not in listening_ports(), 30, "the killed server to release its port")
        # FLARE's start script notices the dead server and starts it again
        wait_for(lambda: poc.port in listening_ports(), 120, "the restarted server")
        second = poc.submit(job_recipe(JOB, resume_from=state_dir))
        status = poc.wait(second, timeout=300)
        poc.stop(grace=5)
        yield {
            "poc": poc,
            "jobs": (first, second),
            "state": json.load(open(os.path.join(state_dir, STATE_FILE))),
            "state_dir": state_dir,
            "resumed_state_dir": os.path.join(poc.participant_dir("server"), RUN_STATE_FOLDER, second),
            "status": status,
            "seconds": time.time() - started,
        }
    finally:
        if poc.our_processes():
            poc.stop(grace=5)


def test_resumed_run_reaches_the_planned_rounds_repeating_at_most_the_interrupted_one(resumed):
    poc, (first, second) = resumed["poc"], resumed["jobs"]
    assert "FINISHED:COMPLETED" in resumed["status"], resumed["status"]
    killed_after = resumed["state"]["rounds_done"]
    assert 2 <= killed_after < PLANNED
    for site in SITES:
        before, after = trained_rounds(poc, site, first), trained_rounds(poc, site, second)
        assert after == list(range(killed_after + 1, PLANNED + 1)), (site, before, after)
        assert set(before) | set(after) == set(range(1, PLANNED + 1))
        assert len(set(before) & set(after)) <= 1, (before, after)
    print(f"killed after round {killed_after}; whole test {resumed['seconds']:.0f} s")


def test_resumed_run_keeps_the_selection_and_its_own_state(resumed):
    earlier = resumed["state"]
    with open(os.path.join(resumed["resumed_state_dir"], STATE_FILE)) as f:
        state = json.load(f)
    assert state["rounds_done"] == PLANNED and state["num_rounds"] == PLANNED
    assert state["resumed_from"].endswith(resumed["jobs"][0])
    rounds = [h["round"] for h in state["history"]]
    assert rounds == list(range(1, PLANNED + 1))
    assert state["history"][: len(earlier["history"])] == earlier["history"]
    best = max((h for h in state["history"] if h["score"] is not None), key=lambda h: h["score"])
    assert (state["best_round"], state["best_score"]) == (best["round"], best["score"])
    for name in ("FL_global_model.pt", "best_FL_global_model.pt"):
        assert os.path.isfile(os.path.join(resumed["resumed_state_dir"], name))
    assert earlier["best_round"] is not None
    if state["best_round"] == earlier["best_round"]:  # not beaten: the earlier run's best model is the best
        kept = [
            open(os.path.join(d, "best_FL_global_model.pt"), "rb").read()
            for d in (resumed["state_dir"], resumed["resumed_state_dir"])
        ]
        assert kept[0] == kept[1]


def test_nothing_left_running(resumed):
    assert resumed["poc"].our_processes() == []
    assert resumed["poc"].port not in listening_ports()

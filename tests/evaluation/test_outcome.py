"""How a job ended, read from FLARE's status, its server's log lines (as FLARE 2.9 writes them) and the selection."""

import json

from fedbrats.evaluation.outcome import (
    COMPLETED,
    failure_text,
    job_failure,
    log_reason,
    log_rounds,
    server_failure,
)

RUN = "[identity=example_project, run=e38e81f4, wf=fedavg] - "
ABORTED_LOG = "\n".join(
    [
        f"2026-12-05 00:50:52,005 - ScoredScatterAndGather - INFO - {RUN}Round 0 started.",
        f"2026-12-05 00:51:05,720 - ScoredScatterAndGather - INFO - {RUN}Round 0 finished.",
        f"2026-12-05 00:51:06,076 - ScoredScatterAndGather - INFO - {RUN}Round 1 started.",
        "2026-12-05 00:51:34,740 - WFCommServer - ERROR - Client site-3 is deemed disconnected!",
        f"2026-12-05 00:51:34,741 - WFCommServer - ERROR - {RUN}Alive clients 2 < required min 3",
        f"2026-12-05 00:51:34,742 - ServerRunner - ERROR - {RUN}Aborting current RUN due to FATAL_SYSTEM_ERROR "
        "received: Aborting job due to deployment policy violation",
    ]
)
"""The server's job log of a POC run whose site-3 was killed in round 2 with min_clients 3 (FLARE 2.9)."""


def test_the_reason_of_too_few_live_sites_names_the_numbers_and_the_lost_site():
    assert log_reason(ABORTED_LOG) == "alive sites 2 < required min_clients 3 (site-3 lost)"
    assert log_rounds(ABORTED_LOG) == {"round": 2, "rounds_done": 1}


def test_other_reasons_flare_logs():
    bad_result = (
        f"ServerRunner - ERROR - {RUN}Aborting current RUN due to FATAL_SYSTEM_ERROR received: Result from site-2 is "
        "bad, error code: EXECUTION_EXCEPTION. ScoredScatterAndGather exiting at round 0."
    )
    assert log_reason(bad_result) == (
        "Result from site-2 is bad, error code: EXECUTION_EXCEPTION. ScoredScatterAndGather exiting at round 0."
    )
    job_died = "FederatedServer - INFO - Failing job e38e81f4 due to reported failure from site-3: exception"
    assert log_reason(job_died) == "site-3 reported that its job failed: exception"
    assert log_reason("WFCommServer - ERROR - All clients are dead: ['site-1', 'site-2']") == (
        "every site was lost: ['site-1', 'site-2']"
    )
    assert log_reason("Round 0 started.") is None


def test_rounds_after_the_last_round_finished():
    log = "Round 0 started.\nRound 0 finished.\nRound 1 started.\nRound 1 finished."
    assert log_rounds(log) == {"round": None, "rounds_done": 2}
    assert log_rounds("") == {"round": None, "rounds_done": None}


def test_a_completed_job_is_no_failure_even_with_errors_in_its_log():
    assert job_failure(COMPLETED, ABORTED_LOG) is None
    assert job_failure(None, ABORTED_LOG) is None  # the simulator exited 0 and the selection records no abort


def test_failure_from_the_log_and_from_the_selection():
    failure = job_failure("FINISHED:EXECUTION_EXCEPTION", ABORTED_LOG)
    assert failure == {
        "status": "FINISHED:EXECUTION_EXCEPTION",
        "round": 2,
        "rounds_done": 1,
        "planned": None,
        "reason": "alive sites 2 < required min_clients 3 (site-3 lost)",
    }
    assert failure_text(failure) == (
        "aborted in round 2: alive sites 2 < required min_clients 3 (site-3 lost) (FINISHED:EXECUTION_EXCEPTION)"
    )
    aborted = {"round": 2, "rounds_done": 1, "planned": 3, "reason": "alive sites 2 < required min_clients 3"}
    from_selection = job_failure("FINISHED:EXECUTION_EXCEPTION", "", aborted)
    assert from_selection["planned"] == 3 and from_selection["reason"] == aborted["reason"]
    assert failure_text(from_selection).startswith("aborted in round 2 of 3: alive sites 2")
    assert job_failure(None, "", aborted)["round"] == 2  # the selection's entry alone says the job failed


def test_failure_without_a_reason_in_the_log():
    assert job_failure("FINISHED:ABORTED")["reason"] == "aborted by an admin (nvflare job abort)"
    assert job_failure("RUNNING")["reason"] == "still RUNNING when the wait for it ended"
    assert failure_text(job_failure("simulator exit code 2")) == (
        "aborted: the server's log does not say why (simulator exit code 2)"
    )


def test_server_folder(tmp_path):
    (tmp_path / "app_server").mkdir()
    (tmp_path / "log.txt").write_text(ABORTED_LOG)
    selection = {"aborted": {"round": 2, "rounds_done": 1, "planned": 3, "reason": "x"}}
    (tmp_path / "app_server" / "global_model_selection.json").write_text(json.dumps(selection))
    failure = server_failure(str(tmp_path), "FINISHED:EXECUTION_EXCEPTION")
    assert (failure["round"], failure["planned"]) == (2, 3)
    assert failure["reason"] == "alive sites 2 < required min_clients 3 (site-3 lost)"
    assert server_failure(str(tmp_path / "absent"), COMPLETED) is None

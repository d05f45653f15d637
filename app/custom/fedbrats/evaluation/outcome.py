"""How a FLARE job ended: normally, or else why and in which round, from its status, its server's logs and the
``aborted`` entry of the server's model selection (:mod:`fedbrats.runtime.fl.model_selector`)."""

import json
import os
import re
from typing import Iterable, Optional

from fedbrats.runtime.fl.model_selector import SELECTION_FILE

COMPLETED = "FINISHED:COMPLETED"
"""FLARE's status of a job that finished normally."""
UNFINISHED = ("SUBMITTED", "APPROVED", "DISPATCHED", "RUNNING")
"""FLARE's statuses of a job that has not ended."""

LOG_REASONS = (
    (r"Alive clients (\d+) < required min (\d+)", "alive sites {0} < required min_clients {1}"),
    (r"All clients are dead: (.*)$", "every site was lost: {0}"),
    (r"Required client\(s\) dead: (.*)$", "required sites lost: {0}"),
    (
        r"(?:Failing|Aborting) job \S+ due to reported failure from (\S+): (.*)$",
        "{0} reported that its job failed: {1}",
    ),
    (r"Aborting current RUN due to FATAL_SYSTEM_ERROR received: (.*)$", "{0}"),
    (r"Simulator run error: (.*)$", "{0}"),
)
"""FLARE 2.9's log lines that say why it ended a job, most telling first, and the product's words for them."""
LOST_PATTERN = r"Client (\S+) is deemed disconnected!"
STARTED_PATTERN, FINISHED_PATTERN = r"Round (\d+) started\.", r"Round (\d+) finished\."
"""FLARE's round workflow's lines (its rounds count from 0; the product's, as the sites log them, from 1)."""


def read_logs(paths: Iterable[str]) -> str:
    """The text of those of ``paths`` that exist, one after the other."""
    texts = []
    for path in paths:
        if path and os.path.isfile(path):
            with open(path, errors="replace") as f:
                texts.append(f.read())
    return "\n".join(texts)


def log_reason(text: str) -> Optional[str]:
    """Why FLARE ended the job, from its log; None when the log does not say."""
    for k, (pattern, words) in enumerate(LOG_REASONS):
        found = re.search(pattern, text, re.MULTILINE)
        if found:
            reason = words.format(*(g.strip() for g in found.groups()))
            lost = sorted(set(re.findall(LOST_PATTERN, text)))
            return reason + (f" ({', '.join(lost)} lost)" if k == 0 and lost else "")
    return None


def log_rounds(text: str) -> dict:
    """``{"round", "rounds_done"}`` from the round workflow's log lines: the round running at the end (None when the
    last round started had finished) and the rounds completed, counted from 1."""
    started = [int(r) for r in re.findall(STARTED_PATTERN, text)]
    finished = [int(r) for r in re.findall(FINISHED_PATTERN, text)]
    if not started:
        return {"round": None, "rounds_done": None}
    running = not finished or finished[-1] < started[-1]
    return {"round": started[-1] + 1 if running else None, "rounds_done": started[-1] + (0 if running else 1)}


def job_failure(status: Optional[str], log_text: str = "", aborted: Optional[dict] = None) -> Optional[dict]:
    """None when the job finished normally (``status`` FLARE's, None where there is none, as in the simulator);
    else ``{"status", "round", "rounds_done", "planned", "reason"}``, from the selection's ``aborted`` entry where
    there is one and from the server's logs."""
    if not aborted and (status is None or status == COMPLETED):
        return None
    rounds = dict(aborted) if aborted else log_rounds(log_text)
    reason = log_reason(log_text) or (aborted or {}).get("reason") or status_reason(status)
    return {
        "status": status,
        "round": rounds.get("round"),
        "rounds_done": rounds.get("rounds_done"),
        "planned": rounds.get("planned"),
        "reason": reason,
    }


def server_failure(job_dir: str, status: Optional[str], more_log: str = "") -> Optional[dict]:
    """:func:`job_failure` of the job whose server folder is ``job_dir`` (``app_server/`` and ``log.txt`` in it: a
    downloaded result's ``workspace``, a simulator's ``server/simulate_job``); ``more_log``: other server log text."""
    selection = os.path.join(job_dir, "app_server", SELECTION_FILE)
    aborted = None
    if os.path.isfile(selection):
        with open(selection) as f:
            aborted = json.load(f).get("aborted")
    return job_failure(status, read_logs([os.path.join(job_dir, "log.txt")]) + "\n" + more_log, aborted)


def status_reason(status: Optional[str]) -> str:
    if status and "ABORTED" in status:
        return "aborted by an admin (nvflare job abort)"
    if status in UNFINISHED:
        return f"still {status} when the wait for it ended"
    return "the server's log does not say why"


def failure_text(failure: dict) -> str:
    """One line: when the job ended and why, e.g. ``aborted in round 2 of 3: alive sites 2 < required min_clients 3
    (site-3 lost)``."""
    planned = f" of {failure['planned']}" if failure.get("planned") else ""
    if failure.get("round") is not None:
        when = f"aborted in round {failure['round']}{planned}"
    elif failure.get("rounds_done"):
        when = f"aborted after round {failure['rounds_done']}{planned}"
    else:
        when = "aborted"
    status = f" ({failure['status']})" if failure.get("status") else ""
    return f"{when}: {failure['reason']}{status}"

"""A run's state on the server, kept round by round so that a run can resume after the server stops.

The state folder of a run holds ``run_state.json`` (the job's definition, the planned and completed rounds, the
in-time selection: best score, best round, history) beside the global model after the last completed round and
the best global model so far. Each file is replaced atomically, the state file last: a server killed at any
moment leaves the previous round's complete state or this one's.
"""

import json
import os
import shutil
import uuid
from typing import Optional, Tuple

RUN_STATE_FOLDER = "run_state"
"""Folder of the runs' states in the server's workspace when the job names none: ``<folder>/<job id>/``."""
STATE_FILE = "run_state.json"
GLOBAL_MODEL_FILE = "FL_global_model.pt"
BEST_MODEL_FILE = "best_FL_global_model.pt"
"""The models' file names in a state folder: those FLARE's PyTorch persistor gives them."""


def _replace(write, path: str) -> str:
    """Write a temporary file beside ``path`` with ``write(tmp)``, then move it onto ``path`` in one step."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def copy_atomic(source: str, target: str) -> str:
    """Copy ``source`` onto ``target`` so that a reader sees the old file or the new one, never a part."""
    return _replace(lambda tmp: shutil.copyfile(source, tmp), target)


def write_state(folder: str, state: dict) -> str:
    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(state, f, indent=2)

    return _replace(write, os.path.join(folder, STATE_FILE))


def read_state(folder: str) -> dict:
    """The state recorded in ``folder``; ValueError naming what is missing when it holds none."""
    path = os.path.join(folder, STATE_FILE)
    if not os.path.isfile(path):
        raise ValueError(f"{folder} holds no {STATE_FILE}: not the state folder of a run")
    with open(path) as f:
        state = json.load(f)
    if not isinstance(state, dict) or not isinstance(state.get("job"), dict):
        raise ValueError(f"{path} holds no job definition")
    return state


def resume_point(state: dict, planned_rounds: Optional[int] = None) -> Tuple[int, int]:
    """(first round to run, planned total) of a resumed run: the round after the last completed one.

    ``planned_rounds`` replaces the run's planned total (to train longer). ValueError when no round is left or no
    global model of a completed round was kept.
    """
    done = int(state.get("rounds_done") or 0)
    total = int(planned_rounds or state["num_rounds"])
    if done < 1:
        raise ValueError("the run completed no round: nothing to resume from, submit the job again")
    if done >= total:
        raise ValueError(f"the run completed all {total} planned rounds; give more rounds to train further")
    return done, total

"""``--resume-from RUN``: the job that resumes a run from the state its server kept (:mod:`fedbrats.runtime.run_state`).

The resumed job is the run's own job, as recorded in its state, starting from the global model after the last
completed round at the next round, keeping the run's best global model unless a later one beats it, and running
to the planned total. Values given with it (``num_rounds`` included: a new planned total) replace the recorded ones.
"""

import os
from typing import Any, Mapping, Optional

from fedbrats.federation.definition import JobDefinition
from fedbrats.runtime.run_state import read_state, resume_point


def recorded_job(run_dir: str) -> JobDefinition:
    """The job definition a run's state recorded."""
    values = dict(read_state(run_dir)["job"])
    return JobDefinition.from_values(values.pop("name"), values)


def resume_definition(
    run_dir: str, job: Optional[str] = None, overrides: Optional[Mapping[str, Any]] = None
) -> JobDefinition:
    """The job resuming the run whose state is in ``run_dir`` (a path the server can read: the job names it).

    ``job``: the job the caller expects; ValueError when the run was another job's.
    """
    run_dir = os.path.abspath(run_dir)
    state = read_state(run_dir)
    recorded = recorded_job(run_dir)
    if job and job != recorded.name:
        raise ValueError(f"{run_dir} is a run of {recorded.name}, not of {job}")
    changes = dict(overrides or {})
    start, total = resume_point(state, changes.pop("num_rounds", None))
    # the resumed run starts from the run's last global model, not from the model the run started from
    resumed = {**changes, "num_rounds": total, "start_round": start, "resume_from": run_dir, "init_model": ""}
    return recorded.with_overrides(resumed)

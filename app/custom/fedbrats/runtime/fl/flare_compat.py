"""The protected members of NVIDIA FLARE that the product relies on, all in this one module.

FLARE 2.9 has no public way to do three things the product needs:

- write a component's argument into a job's config when it equals its default: FLARE's Job API reads a class's
  ``_always_serialize_args`` (``FedJobConfig._get_args``); :func:`serialize_always` sets it;
- tell when an abort reached a task whose signal is a child of the job's: only the parent ``Signal`` records its
  trigger time, and the child reaches it through ``_parent`` (:func:`abort_time`);
- leave the sites lost during training out of the cross-site evaluation: ``CrossSiteModelEval`` keeps its sites in
  ``_participating_clients`` and has no setter (:func:`evaluation_sites`, :func:`set_evaluation_sites`).

A site in several processes (:mod:`fedbrats.runtime.fl.ranks`, :mod:`fedbrats.runtime.fl.rank_worker`) also builds on
FLARE's multi-process executor and sub-worker, which do not work as they are in FLARE 2.9 and whose protected methods
(:data:`MULTI_PROCESS_MEMBERS`) it overrides; those modules hold that code.

:func:`missing_members` checks the installed FLARE for every one of them (``tests/runtime/fl/test_flare_compat.py``
runs it), so that an upgrade that renames one fails with a message naming it instead of misbehaving in a run.
"""

import inspect
from typing import Callable, List, Optional, TypeVar

from nvflare.apis.signal import Signal
from nvflare.app_common.workflows.cross_site_model_eval import CrossSiteModelEval
from nvflare.job_config.fed_job_config import FedJobConfig

SERIALIZE_ALWAYS = "_always_serialize_args"
SIGNAL_PARENT = "_parent"
EVALUATION_SITES = "_participating_clients"
MULTI_PROCESS_MEMBERS = (
    "_initialize_multi_process",
    "_pass_event_to_rank_processes",
    "_execute_multi_process",
    "_relay_fire_event",
    "receive_execute_result",
)
"""Members of FLARE's ``MultiProcessExecutor`` that :class:`fedbrats.runtime.fl.ranks.SiteRanks` overrides."""
T = TypeVar("T")


def serialize_always(*names: str) -> Callable[[T], T]:
    """Decorate a component class (or mark a component) so that FLARE's Job API writes the arguments ``names`` into
    the job's config even when they equal their defaults."""

    def mark(component: T) -> T:
        setattr(component, SERIALIZE_ALWAYS, tuple(names))
        return component

    return mark


def abort_time(signal: Optional[Signal]) -> Optional[float]:
    """When the abort reached this process: the trigger time of ``signal`` or of the parent it reports."""
    while signal is not None:
        if signal.trigger_time is not None:
            return signal.trigger_time
        signal = getattr(signal, SIGNAL_PARENT, None)
    return None


def evaluation_sites(evaluation: CrossSiteModelEval) -> List[str]:
    """The sites a cross-site evaluation will ask (empty before it starts: then every connected site)."""
    return list(getattr(evaluation, EVALUATION_SITES) or [])


def set_evaluation_sites(evaluation: CrossSiteModelEval, sites: List[str]) -> None:
    setattr(evaluation, EVALUATION_SITES, list(sites))


def missing_members() -> List[str]:
    """What the installed FLARE lacks of the members above; empty when everything is where this module expects it."""
    missing = []
    if SERIALIZE_ALWAYS not in inspect.getsource(FedJobConfig):
        missing.append(f"FedJobConfig no longer reads {SERIALIZE_ALWAYS} (fedbrats: serialize_always)")
    if not hasattr(Signal(Signal()), SIGNAL_PARENT):
        missing.append(f"Signal has no {SIGNAL_PARENT} (fedbrats: abort_time)")
    if not hasattr(CrossSiteModelEval(), EVALUATION_SITES):
        missing.append(f"CrossSiteModelEval has no {EVALUATION_SITES} (fedbrats: set_evaluation_sites)")
    from nvflare.app_common.executors.multi_process_executor import MultiProcessExecutor
    from nvflare.private.fed.app.client import sub_worker_process

    missing += [
        f"MultiProcessExecutor has no {name} (fedbrats: SiteRanks)"
        for name in MULTI_PROCESS_MEMBERS
        if not hasattr(MultiProcessExecutor, name)
    ]
    for name in ("main", "parse_arguments", "SubWorkerExecutor"):
        if not hasattr(sub_worker_process, name):
            missing.append(f"FLARE's sub_worker_process has no {name} (fedbrats: rank_worker)")
    if not hasattr(getattr(sub_worker_process, "SubWorkerExecutor", None), "_get_client_run_manager"):
        missing.append("SubWorkerExecutor has no _get_client_run_manager (fedbrats: rank_worker)")
    return missing

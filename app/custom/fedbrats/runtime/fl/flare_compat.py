"""The protected members of NVIDIA FLARE that the product relies on, all in this one module.

FLARE 2.9 has no public way to do three things the product needs:

- write a component's argument into a job's config when it equals its default: FLARE's Job API reads a class's
  ``_always_serialize_args`` (``FedJobConfig._get_args``); :func:`serialize_always` sets it;
- tell when an abort reached a task whose signal is a child of the job's: only the parent ``Signal`` records its
  trigger time, and the child reaches it through ``_parent`` (:func:`abort_time`);
- leave the sites lost during training out of the cross-site evaluation: ``CrossSiteModelEval`` keeps its sites in
  ``_participating_clients`` and has no setter (:func:`evaluation_sites`, :func:`set_evaluation_sites`).

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
    return missing

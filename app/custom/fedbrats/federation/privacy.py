"""Privacy options of a job: which of FLARE's filters every site applies to what it returns from training."""

import inspect
import re
from typing import Any, Mapping, Optional, Sequence

from nvflare.apis.filter import Filter
from nvflare.app_common.filters.exclude_vars import ExcludeVars
from nvflare.app_common.filters.percentile_privacy import PercentilePrivacy
from nvflare.app_common.filters.svt_privacy import SVTPrivacy

from fedbrats.runtime.fl.flare_compat import serialize_always

NONE = "none"
PRIVACY_FILTERS = {"svt": SVTPrivacy, "percentile": PercentilePrivacy, "exclude": ExcludeVars}
PRIVACY_OPTIONS = (NONE,) + tuple(PRIVACY_FILTERS)
PRIVACY_DEFAULTS = {
    "svt": {"fraction": 0.9, "epsilon": 0.001, "noise_var": 1.0, "gamma": 1e-4},
    "percentile": {"percentile": 10, "gamma": 0.01},
    "exclude": {"exclude_vars": "^vae_"},
}
"""Filter arguments a job's ``privacy_args`` override. svt: those of FLARE's BraTS 2018 example of Li et al. 2019
(``research/brats18``, ``--enable_dp``); percentile: FLARE's defaults; exclude: the VAE branch, which learns to
reconstruct the input scans, stays at the sites."""
NEEDS_WEIGHT_DIFF = frozenset(PRIVACY_FILTERS)
"""Filters whose sites send weight differences: ``svt`` and ``percentile`` work on the change of the weights in a
round; with ``exclude``, the server adds the differences it gets to the global model, which keeps every tensor
(averaged full weights would replace it by the tensors the sites sent)."""


def privacy_arguments(name: str, args: Optional[Mapping[str, Any]] = None) -> dict:
    """The filter's arguments: its defaults with ``args`` over them; refuses unknown options and arguments."""
    args = dict(args or {})
    if name not in PRIVACY_OPTIONS:
        raise ValueError(f"privacy must be one of {PRIVACY_OPTIONS}, got {name!r}")
    if name == NONE:
        if args:
            raise ValueError(f"privacy_args {sorted(args)} given without a privacy filter")
        return {}
    known = set(inspect.signature(PRIVACY_FILTERS[name].__init__).parameters) - {"self", "data_kinds"}
    unknown = sorted(set(args) - known)
    if unknown:
        raise ValueError(f"unknown arguments {unknown} of privacy {name}; known: {sorted(known)}")
    values = {**PRIVACY_DEFAULTS[name], **args}
    if name == "exclude":
        pattern = values["exclude_vars"]
        if not isinstance(pattern, str) or not pattern:
            raise ValueError("privacy exclude needs exclude_vars: a regular expression of tensor names")
        re.compile(pattern)
    return values


def privacy_filter(
    name: str, args: Optional[Mapping[str, Any]] = None, tensor_names: Sequence[str] = ()
) -> Optional[Filter]:
    """FLARE's filter of privacy option ``name`` (None for ``none``), every argument written into the job.

    ``tensor_names``: the model's tensors; ``exclude`` lists those its pattern matches (a job's config cannot
    hold a compiled pattern).
    """
    values = privacy_arguments(name, args)
    if not values:
        return None
    if name == "exclude":
        pattern = re.compile(values["exclude_vars"])
        values["exclude_vars"] = [n for n in tensor_names if pattern.search(n)]
        if not values["exclude_vars"]:
            raise ValueError(f"privacy exclude: {pattern.pattern!r} matches no tensor of the model")
    privacy = PRIVACY_FILTERS[name](**values)
    return serialize_always(*values)(privacy)  # FLARE's Job API otherwise leaves out arguments equal to defaults


def kept_at_sites(name: str, args: Optional[Mapping[str, Any]] = None) -> str:
    """Regular expression of the tensors that never leave a site under privacy option ``name`` ('' for none)."""
    return privacy_arguments(name, args)["exclude_vars"] if name == "exclude" else ""

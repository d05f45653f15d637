"""Guards on a model update before it is sent or averaged: finite values, the model's tensors, their shapes.

Plain functions over ``{name: array}`` mappings (numpy arrays or torch tensors); no FLARE in here. The site
runs :func:`nonfinite_tensors` on its trained weights, the server :func:`update_problems` on every contribution.
"""

import re
from typing import Any, List, Mapping, Optional, Sequence

import numpy as np
import torch

MAX_NAMED = 5
"""Tensor names a message lists before it says how many more there are."""


def named(keys: Sequence[str]) -> str:
    """``a, b, c`` or ``a, b, c, d, e and 7 more``."""
    keys = sorted(keys)
    shown = ", ".join(keys[:MAX_NAMED])
    return f"{shown} and {len(keys) - MAX_NAMED} more" if len(keys) > MAX_NAMED else shown


def _array(value: Any) -> Optional[np.ndarray]:
    """``value`` as a numeric array, or None when it is not numbers."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value)
    except Exception:
        return None
    return array if array.dtype.kind in "biufc" else None


def shape_of(value: Any) -> tuple:
    return tuple(getattr(value, "shape", np.shape(value)))


def nonfinite_tensors(weights: Mapping[str, Any]) -> List[str]:
    """Names of the tensors that hold a NaN or an infinite value."""
    bad = []
    for name, value in weights.items():
        if isinstance(value, torch.Tensor):
            finite = bool(torch.isfinite(value).all())
        else:
            array = _array(value)
            finite = array is None or bool(np.isfinite(array).all())
        if not finite:
            bad.append(name)
    return bad


def update_problems(
    update: Any, reference: Optional[Mapping[str, Sequence[int]]] = None, allowed_missing: str = ""
) -> List[str]:
    """What is wrong with a contribution of weights (or weight differences); empty when nothing is.

    ``reference``: the current global model's tensor shapes ``{name: shape}``; None checks the values only.
    ``allowed_missing``: a regular expression of tensors a contribution may leave out (those a privacy filter
    keeps at the sites).
    """
    if not isinstance(update, Mapping) or not update:
        return ["it holds no weights"]
    problems = []
    if reference is not None:
        keep = re.compile(allowed_missing) if allowed_missing else None
        missing = [k for k in reference if k not in update and not (keep and keep.search(k))]
        extra = [k for k in update if k not in reference]
        if missing:
            problems.append(f"{len(missing)} of the model's {len(reference)} tensors missing: {named(missing)}")
        if extra:
            problems.append(f"{len(extra)} tensors the model does not have: {named(extra)}")
        wrong = {k: shape_of(v) for k, v in update.items() if k in reference and shape_of(v) != tuple(reference[k])}
        if wrong:
            shapes = [f"{k} {wrong[k]} instead of {tuple(reference[k])}" for k in sorted(wrong)[:MAX_NAMED]]
            more = f" and {len(wrong) - MAX_NAMED} more" if len(wrong) > MAX_NAMED else ""
            problems.append(f"{len(wrong)} tensors of the wrong shape: {', '.join(shapes)}{more}")
    not_numbers = [k for k, v in update.items() if _array(v) is None]
    if not_numbers:
        problems.append(f"{len(not_numbers)} entries that are not numeric tensors: {named(not_numbers)}")
    nonfinite = nonfinite_tensors(update)
    if nonfinite:
        problems.append(f"{len(nonfinite)} of {len(update)} tensors hold NaN or Inf: {named(nonfinite)}")
    return problems

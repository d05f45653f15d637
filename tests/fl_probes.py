"""FLARE components that tests copy into a tiny job's ``custom/`` folder; never part of the product's jobs.

``FaultySiteExecutor``: the product's site executor with faults injected at one site in given rounds.
``SiteRecorder``: a site's filter, last of its filters, that writes down every result the site sends (or every task it
receives).
"""

import json
import os
import threading

import numpy as np
import torch
from nvflare.apis.dxo import from_shareable
from nvflare.apis.filter import Filter
from nvflare.apis.fl_constant import FLContextKey, ReturnCode
from nvflare.apis.fl_context import FLContext
from nvflare.app_common.app_constant import AppConstants
from nvflare.fuel.utils import fobs

from fedbrats.runtime.fl.executor import BratsExecutor

NAN_TRAINING = "nan_training"
"""One weight is set to NaN just before training: training spreads it, as a NaN voxel in the input does."""
NAN_REPLY = "nan_reply"
"""One tensor of the reply is set to NaN after the site's own guard: only the server's guard can stop it."""


class FaultySiteExecutor(BratsExecutor):
    def __init__(self, faulty_site: str = "", faults=None, **kwargs):
        super().__init__(**kwargs)
        self.faulty_site = faulty_site
        self.faults = {int(k): v for k, v in (faults or {}).items()}

    def _train(self, shareable, fl_ctx, abort_signal):
        current_round = shareable.get_header(AppConstants.CURRENT_ROUND, 0)
        fault = self.faults.get(current_round) if fl_ctx.get_identity_name() == self.faulty_site else None
        if fault == NAN_TRAINING:
            train_round = self.engine.train_round

            def poisoned(*args, **kwargs):
                with torch.no_grad():
                    next(self.engine.model.parameters()).view(-1)[0] = float("nan")
                return train_round(*args, **kwargs)

            self.engine.train_round = poisoned
            try:
                return super()._train(shareable, fl_ctx, abort_signal)
            finally:
                del self.engine.train_round
        reply = super()._train(shareable, fl_ctx, abort_signal)
        if fault == NAN_REPLY and reply.get_return_code(ReturnCode.OK) == ReturnCode.OK:
            dxo = from_shareable(reply)
            key = sorted(dxo.data)[0]
            dxo.data[key] = np.full_like(dxo.data[key], np.nan)
            reply = dxo.update_shareable(reply)
        return reply


def describe(value, seen=None):
    """JSON-safe description: arrays as shape and dtype, objects by type and attributes, the rest as it is."""
    seen = set() if seen is None else seen
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.ndarray, torch.Tensor)):
        return {"__array__": list(value.shape), "dtype": str(value.dtype)}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return {"__bytes__": len(value), "text": value.decode("utf-8", "replace")}
    if id(value) in seen:
        return {"__seen__": type(value).__name__}
    seen.add(id(value))
    if isinstance(value, dict):
        return {str(k): describe(v, seen) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [describe(v, seen) for v in value]
    if isinstance(value, FLContext):  # what FLARE serialises of a context (its logger stays behind)
        return {"__type__": "FLContext", "model": describe(value.model, seen), "props": describe(value.props, seen)}
    if hasattr(value, "__dict__"):
        return {"__type__": type(value).__name__, **describe(vars(value), seen)}
    return {"__type__": type(value).__name__, "repr": repr(value)}


def arrays_of(value, path="", seen=None):
    """Every array in ``value`` by its path of keys and attributes, e.g. ``DXO|data|conv.weight``."""
    seen = set() if seen is None else seen
    if isinstance(value, (np.ndarray, torch.Tensor)):
        return {path: np.asarray(value)}
    if id(value) in seen or value is None or isinstance(value, (bool, int, float, str, bytes, FLContext)):
        return {}
    seen.add(id(value))
    items = value.items() if isinstance(value, dict) else vars(value).items() if hasattr(value, "__dict__") else ()
    out = {}
    for key, item in items:
        out.update(arrays_of(item, f"{path}|{key}" if path else str(key), seen))
    return out


class SiteRecorder(Filter):
    """Writes ``<direction>_<site>_<task>_<n>.json`` (a description), ``.npz`` (its arrays, :func:`arrays_of`) and
    ``.fobs`` (the serialised shareable) into
    ``out_dir``: as a site's last task result filter, what the site sends (``direction`` "sent"); as a task data
    filter, what it receives ("received")."""

    def __init__(self, out_dir: str = "", direction: str = "sent"):
        super().__init__()
        self.out_dir = out_dir
        self.direction = direction
        self._count = 0
        self._lock = threading.Lock()

    def process(self, shareable, fl_ctx):
        site = fl_ctx.get_identity_name()
        task = fl_ctx.get_prop(FLContextKey.TASK_NAME, "unknown")
        with self._lock:
            self._count += 1
            stem = os.path.join(self.out_dir, f"{self.direction}_{site}_{task}_{os.getpid()}_{self._count:03d}")
        os.makedirs(self.out_dir, exist_ok=True)
        with open(stem + ".json", "w") as f:
            json.dump({"site": site, "task": task, "direction": self.direction, "shareable": describe(shareable)}, f)
        with open(stem + ".fobs", "wb") as f:
            f.write(fobs.dumps(shareable))
        np.savez(stem + ".npz", **arrays_of(shareable))
        return shareable

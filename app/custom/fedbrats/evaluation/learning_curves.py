"""Learning curves of a run: the sites' figures and the server's selection history, per round.

A site's figures are read from its own TensorBoard events where the run's folder holds them (a simulator workspace),
else from the copy the server's receiver recorded (``tb_events/<site>`` in the server's run folder: a downloaded POC
or production result).

Rounds are counted as the models' training progress: the global model a site validates at the start of
round ``r`` (TensorBoard step ``r``, 0 for the initial model) has had ``r`` rounds; the local model it trains
in that round, and its training loss, are plotted at ``r + 1``. The server's history holds the case-weighted
Dice of the global model of every round, the final one included.
"""

import glob
import os
from typing import Dict, List, Optional, Tuple

from fedbrats.prepare.site_specs import site_order
from fedbrats.runtime.constants import MEAN_DICE
from fedbrats.runtime.fl.executor import TB_FOLDER

GLOBAL_TAG, LOCAL_TAG, LOSS_TAG = f"global_model/{MEAN_DICE}", f"local_model/{MEAN_DICE}", "train/loss"
Curve = List[Tuple[int, float]]


def site_event_folders(root: str) -> Dict[str, str]:
    """Site -> its newest ``tb_events`` folder below ``root`` (the site is read from its ``app_<site>`` folder)."""
    folders = {}
    found = glob.glob(os.path.join(glob.escape(root), "**", TB_FOLDER), recursive=True)
    for folder in sorted(found, key=os.path.getmtime):
        app = os.path.basename(os.path.dirname(folder))
        if app.startswith("app_") and app != "app_server":
            folders[app[len("app_") :]] = folder
    return dict(sorted(folders.items()))


def server_event_folders(root: str) -> Dict[str, str]:
    """Site -> the newest folder in which the server's TensorBoard receiver recorded that site's figures."""
    folders = {}
    found = glob.glob(os.path.join(glob.escape(root), "**", TB_FOLDER, "*", ""), recursive=True)
    for folder in sorted(found, key=os.path.getmtime):
        folder = folder.rstrip(os.sep)
        folders[os.path.basename(folder)] = folder
    return dict(sorted(folders.items()))


def read_scalars(folder: str) -> Dict[str, Dict[int, float]]:
    """Tag -> {step: value} of the scalars in a TensorBoard folder (a repeated step keeps its last value)."""
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    events = EventAccumulator(folder, size_guidance={SCALARS: 0})
    events.Reload()
    return {tag: {e.step: e.value for e in events.Scalars(tag)} for tag in events.Tags()[SCALARS]}


def _shifted(values: Dict[int, float], by: int) -> Curve:
    return [(int(step) + by, float(v)) for step, v in sorted(values.items())]


def learning_curves(root: Optional[str], selection: Optional[dict]) -> dict:
    """``{"sites": {site: {"global", "local", "loss"}}, "server": curve}``; a curve is ``[(round, value)]``."""
    sites: Dict[str, Dict[str, Curve]] = {}
    found = {}
    if root and os.path.isdir(root):
        found = {**server_event_folders(root), **site_event_folders(root)}
    for site, folder in found.items():
        scalars = read_scalars(folder)
        sites[site] = {
            "global": dict(_shifted(scalars.get(GLOBAL_TAG, {}), 0)),
            "local": _shifted(scalars.get(LOCAL_TAG, {}), 1),
            "loss": _shifted(scalars.get(LOSS_TAG, {}), 1),
        }
    server: Curve = []
    for entry in sorted((selection or {}).get("history") or [], key=lambda h: h["round"]):
        if entry.get("score") is not None:
            server.append((int(entry["round"]), float(entry["score"])))
        for site, metrics in (entry.get("sites") or {}).items():
            curve = sites.setdefault(site, {"global": {}, "local": [], "loss": []})
            curve["global"][int(entry["round"])] = float(metrics[MEAN_DICE])
    for curve in sites.values():
        curve["global"] = sorted(curve["global"].items())
    return {"sites": dict(sorted(sites.items(), key=lambda item: site_order(item[0]))), "server": server}

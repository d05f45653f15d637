"""A trained model file: which model it is, the training settings that rebuild it, and loading it.

The settings come from ``--settings`` (a JSON of training settings or a job's ``config_fed_client.json``), from
``--job`` (a job folder, simulator workspace or downloaded job result), from the checkpoint itself
(``fedbrats train`` stores them), or from the job config that FLARE keeps next to the model
(``app_server/config/``, ``app_<site>/config/``).
"""

import argparse
import glob
import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

import torch

from fedbrats.runtime.errors import BratsDataError
from fedbrats.runtime.fl.executor import BEST_LOCAL_MODEL
from fedbrats.runtime.fl.model_selector import SELECTION_FILE
from fedbrats.runtime.model import build_model, load_weights
from fedbrats.runtime.settings import TrainSettings

CLIENT_CONFIG, SERVER_CONFIG = "config_fed_client.json", "config_fed_server.json"
FINAL_GLOBAL_FILE, BEST_GLOBAL_FILE = "FL_global_model.pt", "best_FL_global_model.pt"
SEARCH_LEVELS = 2
"""Folders above a model file searched for its job config."""


@dataclass
class ModelFile:
    """A checkpoint with what is known about it."""

    path: str
    kind: str
    settings: TrainSettings
    settings_source: str
    round: Optional[int] = None
    num_rounds: Optional[int] = None
    validation: Dict[str, Any] = field(default_factory=dict)
    job_config: Optional[str] = None


def _read_json(path: str) -> Any:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise BratsDataError(f"cannot read JSON ({e})", path=path) from None


def executor_training(config: dict, path: str) -> Dict[str, Any]:
    """The ``training`` arguments of the product's executor in a ``config_fed_client.json``."""
    for entry in config.get("executors", []):
        executor = entry.get("executor", {})
        if str(executor.get("path", "")).endswith("BratsExecutor"):
            return dict(executor.get("args", {}).get("training") or {})
    raise BratsDataError("no fedbrats executor with training settings in this job config", path=path)


def read_settings_file(path: str) -> TrainSettings:
    """Training settings from a JSON of settings or from a job's ``config_fed_client.json``."""
    data = _read_json(path)
    values = executor_training(data, path) if isinstance(data, dict) and "executors" in data else data
    try:
        return TrainSettings.from_dict(values)
    except (TypeError, ValueError) as e:
        raise BratsDataError(f"invalid training settings ({e})", path=path) from None


def find_job_config(path: str) -> Optional[str]:
    """The ``config_fed_client.json`` of a job folder, workspace or result (``path`` may be the file itself)."""
    if os.path.isfile(path):
        return path
    found = sorted(glob.glob(os.path.join(path, "**", CLIENT_CONFIG), recursive=True), key=lambda p: (len(p), p))
    return found[0] if found else None


def config_near(model_path: str) -> Optional[str]:
    """The job config FLARE keeps beside a model: ``<app>/config/config_fed_client.json`` in a folder above it."""
    folder = os.path.dirname(os.path.abspath(model_path))
    for _ in range(SEARCH_LEVELS):
        for pattern in ("config", "app*/config"):
            found = sorted(glob.glob(os.path.join(folder, pattern, CLIENT_CONFIG)))
            if found:
                return found[0]
        folder = os.path.dirname(folder)
    return None


def read_checkpoint(path: str) -> dict:
    """The checkpoint's dict (``{"model": state_dict, ...}``); a bare state dict is wrapped."""
    if not os.path.isfile(path):
        raise BratsDataError("model file not found", path=path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise BratsDataError(f"cannot read the model file ({type(e).__name__}: {e})", path=path) from None
    if not isinstance(checkpoint, dict):
        raise BratsDataError(f"not a PyTorch checkpoint of a state dict ({type(checkpoint).__name__})", path=path)
    return checkpoint if "model" in checkpoint else {"model": checkpoint}


def fitting_weights(path: str, settings: TrainSettings) -> Dict[str, torch.Tensor]:
    """The weights of the checkpoint at ``path`` as a state dict, checked against the network of ``settings``;
    ValueError naming the file and what does not fit."""
    try:
        weights = {k: torch.as_tensor(v) for k, v in read_checkpoint(path)["model"].items()}
    except BratsDataError as e:
        raise ValueError(str(e)) from None
    except (AttributeError, TypeError, RuntimeError, ValueError) as e:
        raise ValueError(f"{path}: not a checkpoint of model weights ({e})") from None
    with torch.device("meta"):
        expected = {k: v.shape for k, v in build_model(settings).state_dict().items()}
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    wrong = sorted(k for k in set(expected) & set(weights) if tuple(weights[k].shape) != tuple(expected[k]))
    if missing or unexpected or wrong:
        problems = [
            f"{label} {len(names)} ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})"
            for label, names in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
            if names
        ]
        raise ValueError(
            f"{path} does not fit SegResNetVAE(init_filters={settings.init_filters}, crop {list(settings.crop)}): "
            f"tensors {'; '.join(problems)}"
        )
    return weights


def resolve_settings(
    model_path: str, checkpoint: dict, settings: Optional[str] = None, job: Optional[str] = None
) -> Tuple[TrainSettings, str, Optional[str]]:
    """(settings, where they came from, job config path or None) of a model file."""
    if settings:
        return read_settings_file(settings), settings, None
    if job:
        config = find_job_config(job)
        if config is None:
            raise BratsDataError(f"no {CLIENT_CONFIG} in this job folder", path=job)
        return read_settings_file(config), config, config
    if isinstance(checkpoint.get("settings"), dict):
        return TrainSettings.from_dict(checkpoint["settings"]), f"{model_path} (stored settings)", None
    config = config_near(model_path)
    if config is None:
        raise BratsDataError(
            "no training settings found: the model holds none and no job config lies beside it; "
            "pass --settings SETTINGS.json or --job JOB_FOLDER",
            path=model_path,
        )
    return read_settings_file(config), config, config


def num_rounds(config: Optional[str]) -> Optional[int]:
    """Rounds of the server workflow in the job config beside ``config``, if any (a resumed run's planned total)."""
    server = os.path.join(os.path.dirname(config), SERVER_CONFIG) if config else None
    if not server or not os.path.isfile(server):
        return None
    for workflow in _read_json(server).get("workflows", []):
        rounds = workflow.get("args", {}).get("num_rounds")
        if isinstance(rounds, int):
            return rounds + workflow["args"].get("start_round", 0)
    return None


def describe(path: str, checkpoint: dict) -> Tuple[str, Optional[int], Dict[str, Any]]:
    """(kind, round, validation scores) of a model file, from its name, contents and FLARE's selection record."""
    name, folder = os.path.basename(path), os.path.dirname(os.path.abspath(path))
    selection_path = os.path.join(folder, SELECTION_FILE)
    selection = _read_json(selection_path) if os.path.isfile(selection_path) else {}
    history = selection.get("history") or []
    if name == FINAL_GLOBAL_FILE:
        last = max(history, key=lambda h: h["round"], default={})
        return "final global model", last.get("round"), {"val_mean_dice": last["score"]} if last else {}
    if name == BEST_GLOBAL_FILE:
        best = selection.get("best_score")
        return "best global model", selection.get("best_round"), {"val_mean_dice": best} if best is not None else {}
    if name == BEST_LOCAL_MODEL:
        app = os.path.basename(folder)
        site = app[len("app_") :] if app.startswith("app_") else app
        return f"best local model of {site}", checkpoint.get("round"), dict(checkpoint.get("metrics") or {})
    if "steps" in checkpoint:
        return "centralised model", None, {}
    return "model", None, {}


def open_model(path: str, settings: Optional[str] = None, job: Optional[str] = None) -> ModelFile:
    """What is known about the model at ``path``; refuses a file that cannot be read or has no settings."""
    checkpoint = read_checkpoint(path)
    train_settings, source, config = resolve_settings(path, checkpoint, settings, job)
    kind, round_, validation = describe(path, checkpoint)
    return ModelFile(path, kind, train_settings, source, round_, num_rounds(config), validation, config)


def load_model(model_file: ModelFile) -> torch.nn.Module:
    """The network of ``model_file`` with its weights, in eval mode."""
    model = build_model(model_file.settings)
    try:
        load_weights(model, model_file.path)
    except (RuntimeError, KeyError, TypeError, AttributeError) as e:
        s = model_file.settings
        raise BratsDataError(
            f"the weights do not fit the model of the training settings from {model_file.settings_source} "
            f"(crop {list(s.crop)}, init_filters {s.init_filters}): {str(e).splitlines()[0]}",
            path=model_file.path,
        ) from None
    return model.eval()


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The model (the command's first argument) and where its training settings come from."""
    parser.add_argument("model", help="a model file: a final or best global model, a site's best local model, ...")
    parser.add_argument("--settings", help="training settings JSON, or a job's config_fed_client.json")
    parser.add_argument("--job", help="job folder, simulator workspace or job result holding the job's config")

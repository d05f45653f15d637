"""Assemble runnable FLARE job folders from ``jobs/<name>.json``, the app template and this package."""

import argparse
import json
import os
import shutil
from typing import Dict, Optional

import fedbrats

from ..constants import SPLITS
from ..datalist import write_json
from ..settings import TrainSettings, add_settings_arguments, settings_overrides

PACKAGE_DIR = os.path.dirname(os.path.abspath(fedbrats.__file__))
PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.dirname(PACKAGE_DIR)))
APP_CONFIG_DIR = os.path.join(PROJECT_DIR, "app", "config")
JOBS_DIR = os.path.join(PROJECT_DIR, "jobs")
from .package_data import REFERENCE_DATALISTS as DATALISTS_DIR  # noqa: E402
SERVER_CONFIG, CLIENT_CONFIG = "config_fed_server.json", "config_fed_client.json"


def job_spec(name_or_path: str) -> dict:
    """A job definition: a path to a JSON file or the name of one in ``jobs/``."""
    path = name_or_path if name_or_path.endswith(".json") else os.path.join(JOBS_DIR, f"{name_or_path}.json")
    if not os.path.isfile(path):
        known = sorted(f[:-5] for f in os.listdir(JOBS_DIR) if f.endswith(".json")) if os.path.isdir(JOBS_DIR) else []
        raise FileNotFoundError(f"no job definition {path}; known jobs: {known}")
    with open(path) as f:
        return json.load(f)


def resolve_spec(spec: dict, overrides: Optional[dict] = None) -> dict:
    """Apply overrides (``num_rounds``, ``training`` fields, ``data_root``, ``eval_split``, ...) to a spec."""
    spec = json.loads(json.dumps(spec))
    overrides = dict(overrides or {})
    training = overrides.pop("training", {}) or {}
    spec.update({k: v for k, v in overrides.items() if v is not None})
    settings = TrainSettings.from_dict(spec.get("training")).replace(**training)
    spec["training"] = settings.to_dict()
    if spec.get("eval_split", "testing") not in SPLITS:
        raise ValueError(f"eval_split must be one of {SPLITS}")
    if os.path.isabs(spec.get("data_root") or "") and not overrides.get("data_root"):
        raise ValueError("a job definition must not hold an absolute data_root: give it at build time or per site")
    return spec


def _client_config(spec: dict) -> dict:
    with open(os.path.join(APP_CONFIG_DIR, CLIENT_CONFIG)) as f:
        config = json.load(f)
    for key in ("training", "data_root", "datalist", "eval_split", "device", "send_weight_diff"):
        if key in spec:
            config[key] = spec[key]
    return config


def _server_config(spec: dict) -> dict:
    with open(os.path.join(APP_CONFIG_DIR, SERVER_CONFIG)) as f:
        config = json.load(f)
    settings = TrainSettings.from_dict(spec["training"])
    config["num_rounds"] = int(spec["num_rounds"])
    config["min_clients"] = int(spec["min_clients"])
    config["model"]["args"] = settings.model_kwargs()
    config["aggregation_weights"] = {site: 1.0 for site in spec.get("sites", [])}
    config["expected_data_kind"] = "WEIGHT_DIFF" if spec.get("send_weight_diff") else "WEIGHTS"
    if "task_request_interval" in spec:
        config["server"]["task_request_interval"] = float(spec["task_request_interval"])
    return config


def build_job(name_or_path: str, out_dir: str, overrides: Optional[dict] = None) -> str:
    """Write ``<out_dir>/<job name>/`` with meta.json and an app of real copies; returns its path."""
    spec = resolve_spec(job_spec(name_or_path), overrides)
    job_dir = os.path.join(out_dir, spec["name"])
    if os.path.exists(job_dir):
        shutil.rmtree(job_dir)
    app = os.path.join(job_dir, "app")
    write_json(os.path.join(app, "config", SERVER_CONFIG), _server_config(spec))
    write_json(os.path.join(app, "config", CLIENT_CONFIG), _client_config(spec))
    shutil.copytree(DATALISTS_DIR, os.path.join(app, "config", "datalists"), ignore=shutil.ignore_patterns("*.tsv"))
    shutil.copytree(
        PACKAGE_DIR, os.path.join(app, "custom", "fedbrats"), symlinks=False,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    write_json(
        os.path.join(job_dir, "meta.json"),
        {"name": spec["name"], "resource_spec": {}, "deploy_map": {"app": ["@ALL"]}, "min_clients": int(spec["min_clients"])},
    )
    return job_dir


def overrides_from_args(args: argparse.Namespace) -> Dict:
    training = settings_overrides(args)
    if args.local_epochs is not None:
        training["local_epochs"] = args.local_epochs
    return {
        "num_rounds": args.rounds, "min_clients": args.min_clients, "data_root": args.data_root,
        "eval_split": args.eval_split, "send_weight_diff": args.send_weight_diff or None, "training": training,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job", help="job name in jobs/ (brats_fedavg, brats_central, brats_fedavg_demo) or a JSON file")
    parser.add_argument("--out", default="workspace/jobs", help="folder to write the job into")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--min-clients", type=int)
    parser.add_argument("--local-epochs", type=int)
    parser.add_argument("--data-root", help="default data root for sites without a site-local setting")
    parser.add_argument("--eval-split", choices=SPLITS)
    parser.add_argument("--send-weight-diff", action="store_true")
    add_settings_arguments(parser)


def run(args: argparse.Namespace) -> None:
    job_dir = build_job(args.job, args.out, overrides_from_args(args))
    print(f"job written to {os.path.abspath(job_dir)}")
    print(f"run it: nvflare simulator {job_dir} -w workspace/sim -n 2 -t 2")

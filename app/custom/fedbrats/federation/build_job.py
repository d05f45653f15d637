"""``fedbrats build-job``: export one of the product's jobs through its recipe as a native FLARE job folder."""

import argparse
import os
import shutil
import tempfile
from typing import Dict, Optional

from fedbrats.federation.catalog import job_names, job_recipe
from fedbrats.federation.eval_recipe import add_model_arguments, model_overrides
from fedbrats.federation.options import add_job_arguments, overrides_from_args

CONFIG_FILES = ("config_fed_server.json", "config_fed_client.json")


def build_job(name: str, out_dir: str, overrides: Optional[dict] = None, resume_from: str = "") -> str:
    """Write ``<out_dir>/<name>/`` (meta.json, app/config, app/custom) through the recipe; returns its path.

    ``overrides``: ``num_rounds``, ``min_clients``, ``sites``, ``data_root``, ``eval_split``,
    ``send_weight_diff``, ``privacy``, ``privacy_args``, ``scope``, ``wait_time_after_min_received``,
    ``task_request_interval``, ``run_state_dir`` and ``training`` (TrainSettings fields); an evaluation job's
    ``models`` (the model files it scores). ``resume_from``: the state folder of a run to resume
    (:mod:`fedbrats.federation.resume`).
    """
    recipe = job_recipe(name, overrides, resume_from)
    job_dir = os.path.join(os.path.abspath(out_dir), recipe.name)
    if os.path.exists(job_dir):
        shutil.rmtree(job_dir)
    recipe.export(os.path.abspath(out_dir))
    return job_dir


def export_app_config(name: str, out_dir: str, overrides: Optional[dict] = None) -> Dict[str, str]:
    """Write only the job's server and site configs into ``out_dir`` (``app/config`` holds the reference job's)."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {}
    with tempfile.TemporaryDirectory() as tmp:
        job_dir = build_job(name, tmp, overrides)
        for config in CONFIG_FILES:
            paths[config] = shutil.copyfile(
                os.path.join(job_dir, "app", "config", config), os.path.join(out_dir, config)
            )
    return paths


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job", choices=job_names(), help="the job to export (jobs/<job>/job.py)")
    parser.add_argument("--out", default="workspace/jobs", help="folder to write the job into")
    parser.add_argument(
        "--app-config",
        metavar="DIR",
        help="write only config_fed_server.json and config_fed_client.json into DIR (e.g. app/config)",
    )
    add_job_arguments(parser)
    add_model_arguments(parser)
    parser.add_argument(
        "--resume-from",
        metavar="RUN",
        help="the state folder of a run (on the server: run_state/<job id> in its workspace) to resume: its job, "
        "from the round after its last completed one to the planned total (--rounds: a new total)",
    )


def run(args: argparse.Namespace) -> None:
    overrides = {**overrides_from_args(args), **model_overrides(args)}
    if args.app_config:
        for path in export_app_config(args.job, args.app_config, overrides).values():
            print(f"written {path}")
        return
    try:
        job_dir = build_job(args.job, args.out, overrides, args.resume_from)
    except ValueError as e:
        raise SystemExit(f"fedbrats build-job: {e}") from None
    print(f"job written to {job_dir}")
    print(f"run it: fedbrats simulate {job_dir} -w workspace/sim  (or: nvflare job submit -j {job_dir})")

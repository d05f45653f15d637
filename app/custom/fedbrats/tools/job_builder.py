"""``fedbrats build-job``: export a job of :mod:`fedbrats.tools.jobs` through the recipe as a FLARE job folder."""

import argparse
import json
import os
import shutil
import tempfile
from typing import Dict, Optional

from ..constants import SPLITS
from ..settings import add_settings_arguments, settings_overrides
from .jobs import JOBS
from .privacy import PRIVACY_OPTIONS
from .sites import site_names

CONFIG_FILES = ("config_fed_server.json", "config_fed_client.json")


def job_recipe(name: str, overrides: Optional[dict] = None, resume_from: str = ""):
    """The recipe of job ``name``; with ``resume_from`` (a run's state folder), the job resuming that run."""
    from .recipe import BratsRecipe
    from .resume import resume_definition

    if resume_from:
        return BratsRecipe(resume_definition(resume_from, name, overrides))
    return BratsRecipe(name, overrides)


def build_job(name: str, out_dir: str, overrides: Optional[dict] = None, resume_from: str = "") -> str:
    """Write ``<out_dir>/<name>/`` (meta.json, app/config, app/custom) through the recipe; returns its path.

    ``overrides``: ``num_rounds``, ``min_clients``, ``sites``, ``data_root``, ``eval_split``,
    ``send_weight_diff``, ``privacy``, ``privacy_args``, ``scope``, ``wait_time_after_min_received``,
    ``task_request_interval``, ``run_state_dir`` and ``training`` (TrainSettings fields). ``resume_from``: the
    state folder of a run to resume (:mod:`fedbrats.tools.resume`).
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


def add_job_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags that override a job's values and training settings (build-job and the jobs' job.py)."""
    parser.add_argument("--rounds", type=int)
    parser.add_argument(
        "--sites",
        nargs="+",
        metavar="SITE[:GRADE]",
        help="the federation's sites (default: the job's), e.g. site-1 site-2 site-3; a grade (HGG, LGG, mix, "
        "mix=F) only says which synthetic cases a simulator run makes for a site without data",
    )
    parser.add_argument(
        "--min-clients", type=int, help="sites a round waits for (default: the job's; with --sites all)"
    )
    parser.add_argument("--local-epochs", type=int, help="passes over a site's cases per round (sets --local-steps 0)")
    parser.add_argument("--local-steps", type=int, help="optimiser steps per round; 0: --local-epochs passes")
    parser.add_argument("--data-root", help="default data root for sites without a site-local setting")
    parser.add_argument(
        "--resume-from",
        metavar="RUN",
        help="the state folder of a run (on the server: run_state/<job id> in its workspace) to resume: its job, "
        "from the round after its last completed one to the planned total (--rounds: a new total)",
    )
    parser.add_argument("--run-state-dir", help="server-side folder of the runs' states (default: run_state/ there)")
    parser.add_argument("--eval-split", choices=SPLITS)
    parser.add_argument("--send-weight-diff", action="store_true")
    parser.add_argument(
        "--privacy", choices=PRIVACY_OPTIONS, help="FLARE filter on the sites' training results (docs/privacy.md)"
    )
    parser.add_argument(
        "--privacy-arg",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="argument of the privacy filter, e.g. epsilon=0.01 (repeatable)",
    )
    parser.add_argument("--scope", help="privacy scope of the sites' local/privacy.json the job asks for")
    parser.add_argument(
        "--wait-after-min",
        type=int,
        dest="wait_time_after_min_received",
        metavar="SECONDS",
        help="how long a round waits for the other sites once --min-clients have answered",
    )
    add_settings_arguments(parser)


def parse_privacy_args(pairs) -> Dict:
    """``["epsilon=0.01", "exclude_vars=^vae_"]`` -> ``{"epsilon": 0.01, "exclude_vars": "^vae_"}``."""
    values = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise SystemExit(f"--privacy-arg must be NAME=VALUE, got {pair!r}")
        try:
            values[name] = json.loads(text)
        except json.JSONDecodeError:
            values[name] = text
    return values


def overrides_from_args(args: argparse.Namespace) -> Dict:
    training = settings_overrides(args)
    if args.local_epochs is not None:
        training.update(local_epochs=args.local_epochs, local_steps=0)
    if args.local_steps is not None:
        training["local_steps"] = args.local_steps
    data_root = os.path.abspath(args.data_root) if args.data_root else None
    sites = site_names(args.sites) if args.sites else None
    return {
        "num_rounds": args.rounds,
        "sites": sites,
        "min_clients": args.min_clients if args.min_clients is not None or not sites else len(sites),
        "data_root": data_root,
        "eval_split": args.eval_split,
        "send_weight_diff": args.send_weight_diff or None,
        "privacy": args.privacy,
        "privacy_args": parse_privacy_args(args.privacy_arg) or None,
        "scope": args.scope,
        "wait_time_after_min_received": args.wait_time_after_min_received,
        "run_state_dir": os.path.abspath(args.run_state_dir) if args.run_state_dir else None,
        "training": training,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job", choices=sorted(JOBS), help="job to export")
    parser.add_argument("--out", default="workspace/jobs", help="folder to write the job into")
    parser.add_argument(
        "--app-config",
        metavar="DIR",
        help="write only config_fed_server.json and config_fed_client.json into DIR (e.g. app/config)",
    )
    add_job_arguments(parser)


def run(args: argparse.Namespace) -> None:
    if args.app_config:
        for path in export_app_config(args.job, args.app_config, overrides_from_args(args)).values():
            print(f"written {path}")
        return
    try:
        job_dir = build_job(args.job, args.out, overrides_from_args(args), args.resume_from)
    except ValueError as e:
        raise SystemExit(f"fedbrats build-job: {e}") from None
    print(f"job written to {job_dir}")
    print(f"run it: fedbrats simulate {job_dir} -w workspace/sim  (or: nvflare job submit -j {job_dir})")

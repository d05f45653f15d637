"""A job's command-line options: the flags of ``fedbrats build-job`` and of every ``jobs/<name>/job.py`` that
override the job's values and its training settings."""

import argparse
import json
import os
from typing import Dict, Sequence

from fedbrats.federation.definition import EVERY_SITE, TRACKERS
from fedbrats.federation.privacy import PRIVACY_OPTIONS
from fedbrats.prepare.site_specs import parse_sites
from fedbrats.runtime.constants import SPLITS
from fedbrats.runtime.fl.algorithms import ALGORITHMS
from fedbrats.runtime.settings import add_settings_arguments, settings_overrides


def add_job_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags that override a job's values and training settings (build-job and the jobs' job.py)."""
    parser.add_argument("--rounds", type=int)
    parser.add_argument(
        "--sites",
        nargs="+",
        metavar="SITE[:GRADE][:PROFILE][:CASES]",
        help="the federation's sites (default: the job's), e.g. site-1 site-2 site-3; a grade (HGG, LGG, mix, "
        "mix=F), a scanner profile and a case count only say which synthetic cases a simulator run makes for a site "
        "without data",
    )
    parser.add_argument(
        "--min-clients", type=int, help="sites a round waits for (default: the job's; with --sites all)"
    )
    parser.add_argument("--local-epochs", type=int, help="passes over a site's cases per round (sets --local-steps 0)")
    parser.add_argument("--local-steps", type=int, help="optimiser steps per round; 0: --local-epochs passes")
    parser.add_argument("--data-root", help="default data root for sites without a site-local setting")
    parser.add_argument("--run-state-dir", help="server-side folder of the runs' states (default: run_state/ there)")
    parser.add_argument("--eval-split", choices=SPLITS)
    parser.add_argument("--send-weight-diff", action="store_true")
    parser.add_argument(
        "--algorithm",
        choices=ALGORITHMS,
        help="aggregation method (default: the job's): fedavg; fedprox (a proximal term at the sites); fedopt (a "
        "server-side optimiser on the averaged update); scaffold (control variates); ditto (a personal model per "
        "site, scored by the cross-site evaluation as the site's local model)",
    )
    parser.add_argument(
        "--algorithm-arg",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="argument of the method, e.g. mu=0.01 (fedprox), lr=1.0 or momentum=0.6 (fedopt), lambda=0.1 (ditto)",
    )
    parser.add_argument(
        "--privacy",
        choices=PRIVACY_OPTIONS,
        help="FLARE filter on what a site sends each round (docs/privacy.md). none: the weights as trained, and each "
        "site's best local model goes to the other sites to be scored; svt: noisy, sparse weight changes "
        "(differential privacy); percentile: only the largest weight changes, clipped; exclude: the weight changes "
        "without the tensors matching exclude_vars (default the VAE branch), which stay at the site. With any "
        "filter the local models stay at the sites. Scores (Dice, HD95, sensitivity, specificity, counts, sorted "
        "per-case values) are sent "
        "under every option",
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
    parser.add_argument(
        "--gpus",
        nargs="+",
        metavar="N|SITE=N",
        help="GPUs a site asks its resource manager for, in the job's meta.json: N for every site, SITE=N for one "
        "(e.g. --gpus 1 site-1=4); a site that cannot give them refuses the job",
    )
    parser.add_argument("--gpu-memory", type=float, metavar="GIB", help="GiB of memory per requested GPU")
    parser.add_argument(
        "--init-model",
        metavar="CHECKPOINT",
        help="start from this model (e.g. an earlier job's FL_global_model.pt or a site's best_local_model.pt) instead "
        "of random weights; checked against the network when the job is built, and carried in the job",
    )
    parser.add_argument(
        "--patience",
        type=int,
        metavar="N",
        help="stop after N rounds without a new best global model; the cross-site evaluation still runs (0: never)",
    )
    parser.add_argument(
        "--tracking",
        choices=TRACKERS,
        help="how the server records every site's per-round figures: tensorboard (default; tb_events/<site> in the "
        "server's run folder) or mlflow (one MLflow run per site; needs pip install fedbrats[tracking])",
    )
    parser.add_argument(
        "--tracking-uri",
        metavar="URI",
        help="MLflow tracking URI, e.g. http://mlflow.example.org:5000 (default: mlflow.db in the server's run folder)",
    )
    add_settings_arguments(parser)


def parse_named_values(pairs, flag: str = "--privacy-arg") -> Dict:
    """``["epsilon=0.01", "exclude_vars=^vae_"]`` -> ``{"epsilon": 0.01, "exclude_vars": "^vae_"}``."""
    values = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise SystemExit(f"{flag} must be NAME=VALUE, got {pair!r}")
        try:
            values[name] = json.loads(text)
        except json.JSONDecodeError:
            values[name] = text
    return values


def gpu_requests(items: Sequence[str]) -> Dict[str, int]:
    """``["1", "site-1=4"]`` -> ``{"*": 1, "site-1": 4}``: ``*`` is every site of the job."""
    requests = {}
    for item in items:
        site, sep, count = item.rpartition("=")
        try:
            requests[site if sep else EVERY_SITE] = int(count)
        except ValueError:
            raise SystemExit(f"--gpus takes N or SITE=N, got {item!r}") from None
    return requests


def overrides_from_args(args: argparse.Namespace) -> Dict:
    training = settings_overrides(args)
    if args.local_epochs is not None:
        training.update(local_epochs=args.local_epochs, local_steps=0)
    if args.local_steps is not None:
        training["local_steps"] = args.local_steps
    data_root = os.path.abspath(args.data_root) if args.data_root else None
    specs = parse_sites(args.sites) if args.sites else None
    return {
        "num_rounds": args.rounds,
        "sites": [s.name for s in specs] if specs else None,
        "synthetic_sites": [str(s) for s in specs] if specs else None,
        "min_clients": args.min_clients if args.min_clients is not None or not specs else len(specs),
        "data_root": data_root,
        "eval_split": args.eval_split,
        "send_weight_diff": args.send_weight_diff or None,
        "privacy": args.privacy,
        "privacy_args": parse_named_values(args.privacy_arg) or None,
        "algorithm": args.algorithm,
        "algorithm_args": parse_named_values(args.algorithm_arg, "--algorithm-arg") or None,
        "scope": args.scope,
        "wait_time_after_min_received": args.wait_time_after_min_received,
        "run_state_dir": os.path.abspath(args.run_state_dir) if args.run_state_dir else None,
        "init_model": os.path.abspath(args.init_model) if args.init_model else None,
        "patience": args.patience,
        "tracking": args.tracking,
        "tracking_uri": args.tracking_uri,
        "gpus": gpu_requests(args.gpus) if args.gpus else None,
        "gpu_memory": args.gpu_memory,
        "training": training,
    }

"""Utility cost of a privacy filter: FedAvg with and without it, on the accuracy study's data and step budget.

Both arms run as the study's FedAvg arm does (same synthetic sites, settings, steps and rounds) and are scored
the same way on every site's test cases. A FedAvg arm that ``fedbrats study`` finished in the same ``--out`` with
the same values is reused.
"""

import argparse
import json
import os
import time
from typing import Any, Dict, List, Optional

from fedbrats.evaluation.report import _fmt
from fedbrats.federation.options import parse_named_values
from fedbrats.federation.privacy import PRIVACY_FILTERS, privacy_arguments
from fedbrats.federation.training import CPU_RECIPE
from fedbrats.research.study import summary
from fedbrats.research.study_arms import FEDAVG, fingerprint, run_arm
from fedbrats.research.study_data import benchmark, study_data, test_loaders
from fedbrats.research.study_report import comparison_table
from fedbrats.runtime.constants import MEAN_DICE
from fedbrats.runtime.data.datalist import write_json
from fedbrats.runtime.settings import TrainSettings

COST_MD, COST_JSON = "privacy_cost.md", "privacy_cost.json"
COST_CASES, COST_STEPS, COST_ROUNDS = 24, 1000, 20
"""The measured comparison's size (docs/privacy.md): synthetic cases per site, steps per arm, FedAvg rounds; it
trains the CPU recipe's 48^3 crops."""


def cost_lines(cost: dict) -> List[str]:
    """Markdown: the arms' Dice and, per model, the change of the case-weighted mean Dice the filter causes."""
    arms = list(cost["arms"])
    plain, private = arms
    lines = [
        f"# Utility cost of privacy `{cost['privacy']}`",
        "",
        f"`{cost['command']}`: {cost['steps']} steps per arm over {cost['rounds']} FedAvg rounds, "
        f"{cost['cases_per_site']} synthetic cases per site, seed {cost['seed']}; filter arguments "
        f"`{json.dumps(cost['privacy_args'], sort_keys=True)}`; the two arms took {cost['arm_minutes']:.1f} minutes.",
        "",
        *comparison_table(cost),
        "",
        "| model | AVE mean without | AVE mean with | change |",
        "|---|---|---|---|",
    ]
    for which in ("final", "best"):
        without = (cost["arms"][plain]["models"][which]["average"] or {}).get(MEAN_DICE)
        with_ = (cost["arms"][private]["models"][which]["average"] or {}).get(MEAN_DICE)
        change = f"{with_ - without:+.4f}" if None not in (with_, without) else "-"
        lines.append(f"| {which} | {_fmt(without)} | {_fmt(with_)} | {change} |")
    return lines


def run_privacy_cost(
    out: str,
    docs: str,
    cases: int,
    steps: int,
    rounds: int,
    seed: int,
    privacy: str,
    privacy_args: Optional[Dict[str, Any]] = None,
    command: str = "",
    overrides: Optional[dict] = None,
) -> dict:
    """Run (or reuse) the FedAvg arm and the FedAvg arm with ``privacy`` (their data and models under ``out``); write
    the comparison into ``docs`` (``privacy_cost.md`` and ``.json``)."""
    if privacy not in PRIVACY_FILTERS:
        raise ValueError(f"privacy must be one of {sorted(PRIVACY_FILTERS)}, got {privacy!r}")
    job = {"privacy": privacy, "privacy_args": dict(privacy_args or {})}
    privacy_arguments(privacy, job["privacy_args"])
    start = time.time()
    data_root = study_data(out, cases, seed)
    settings = TrainSettings.from_dict(CPU_RECIPE).replace(seed=seed, **(overrides or {}))
    key = fingerprint(settings, steps, rounds, steps // rounds, cases, seed)
    loaders = test_loaders(data_root, settings, benchmark().sites)
    private = f"{FEDAVG}-{privacy}"
    arms = {
        FEDAVG: run_arm(FEDAVG, data_root, out, settings, steps, rounds, key, loaders),
        private: run_arm(private, data_root, out, settings, steps, rounds, key, loaders, job),
    }
    cost = {
        "privacy": privacy,
        "privacy_args": privacy_arguments(privacy, job["privacy_args"]),
        **summary(command, settings, steps, rounds, cases, seed, arms, start),
    }
    markdown = "\n".join(cost_lines(cost)) + "\n"
    os.makedirs(docs, exist_ok=True)
    write_json(os.path.join(docs, COST_JSON), cost)
    with open(os.path.join(docs, COST_MD), "w") as f:
        f.write(markdown)
    print(markdown + f"\n[privacy-cost] written {os.path.join(docs, COST_MD)} and {COST_JSON}", flush=True)
    return cost


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--privacy", choices=sorted(PRIVACY_FILTERS), default="svt")
    parser.add_argument("--privacy-arg", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument(
        "--out", default="workspace/privacy-cost", help="data and arms; a finished FedAvg arm there is reused"
    )
    parser.add_argument("--docs", default="docs", help=f"folder for {COST_MD} and {COST_JSON}")
    parser.add_argument("--cases", type=int, default=COST_CASES)
    parser.add_argument("--steps", type=int, default=COST_STEPS)
    parser.add_argument("--rounds", type=int, default=COST_ROUNDS)
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> None:
    sites = benchmark().sites
    if args.steps % (len(sites) * args.rounds):
        raise SystemExit(f"--steps must be a multiple of {len(sites)} x --rounds")
    values = parse_named_values(args.privacy_arg)
    command = f"fedbrats privacy-cost --privacy {args.privacy}"
    command += "".join(f" --privacy-arg {a}" for a in args.privacy_arg)
    command += f" --cases {args.cases} --steps {args.steps} --rounds {args.rounds} --seed {args.seed}"
    run_privacy_cost(args.out, args.docs, args.cases, args.steps, args.rounds, args.seed, args.privacy, values, command)

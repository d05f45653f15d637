"""Accuracy study (``fedbrats study``): centralised, every aggregation method and local-only training on one
synthetic data set, equal step budget.

The command runs (or reuses) every arm (:mod:`fedbrats.research.study_arms`) on the benchmark's synthetic sites
(:mod:`fedbrats.research.study_data`) and writes the results page (:mod:`fedbrats.research.study_report`).
"""

import argparse
import json
import os
import time
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from fedbrats.federation.options import parse_named_values
from fedbrats.federation.training import STUDY_TRAINING
from fedbrats.research.study_arms import (
    CENTRAL,
    DEFAULT_FINETUNE_STEPS,
    FINETUNE_LEARNING_RATE,
    LOCAL,
    METHODS,
    fingerprint,
    method_job,
    run_arm,
)
from fedbrats.research.study_data import (
    BENCHMARKS,
    HETERO,
    REFERENCE,
    Benchmark,
    add_region_counts,
    benchmark,
    data_split,
    recorded_cases,
    site_splits,
    study_data,
    test_loaders,
    test_presence,
)
from fedbrats.research.study_methods import FINETUNED
from fedbrats.research.study_report import RESULTS, write_results
from fedbrats.runtime.engine import select_device
from fedbrats.runtime.fl.algorithms import ALGORITHM_DEFAULTS, algorithm_arguments
from fedbrats.runtime.settings import TrainSettings, add_settings_arguments, settings_overrides

DEFAULT_CASES, DEFAULT_TEST_CASES, DEFAULT_STEPS, DEFAULT_ROUNDS = 24, 12, 2500, 50
"""The default study: synthetic cases per site of the reference benchmark (16 training, 4 validation), test cases per
site, optimiser steps per arm (over all sites), rounds of the federated arms on the reference benchmark."""
BENCHMARK_ROUNDS = {REFERENCE: DEFAULT_ROUNDS, HETERO: 25}
"""Default rounds of each benchmark: a site takes 25 steps a round of the default budget on either (2 sites x 50
rounds, 4 sites x 25 rounds)."""
BENCHMARK_OUT = {REFERENCE: "workspace/study", HETERO: "workspace/study-hetero"}
BENCHMARK_RESULTS = {REFERENCE: RESULTS, HETERO: f"{RESULTS}-hetero"}
"""Default ``--out`` and ``--name`` of each benchmark."""


def arm_names(sites: Sequence[str]) -> Tuple[str, ...]:
    """Every arm of a study of ``sites``, in the default order."""
    return (CENTRAL,) + METHODS + tuple(f"{FINETUNED}-{s}" for s in sites) + tuple(f"{LOCAL}-{s}" for s in sites)


def recipe() -> TrainSettings:
    """The study's recipe: the CPU recipe on 32^3 crops (docs/training.md)."""
    return TrainSettings.from_dict(STUDY_TRAINING)


def route_algorithm_args(pairs: Sequence[str]) -> Dict[str, dict]:
    """``--algorithm-arg NAME=VALUE`` values by the method that takes ``NAME``: ``{"fedprox": {"mu": 0.1}}``."""
    routed: Dict[str, dict] = {}
    for name, value in parse_named_values(pairs, "--algorithm-arg").items():
        owners = [m for m in METHODS if name in ALGORITHM_DEFAULTS[m]]
        if len(owners) != 1:
            known = ", ".join(f"{n} ({m})" for m in METHODS for n in ALGORITHM_DEFAULTS[m])
            raise SystemExit(f"--algorithm-arg {name}: no method, or more than one, takes it; known: {known}")
        routed.setdefault(owners[0], {})[name] = value
    for method, args in routed.items():
        try:
            algorithm_arguments(method, args)
        except ValueError as e:
            raise SystemExit(f"--algorithm-arg: {e}") from None
    return routed


def eta(elapsed: float, k: int, arms: List[str]) -> str:
    """``; about N min left``, from the arms done so far (a fine-tuning arm counted as a tenth of a training arm)."""
    weight = [0.1 if arm.startswith(FINETUNED) else 1.0 for arm in arms]
    done = sum(weight[: k - 1])
    return f"; about {elapsed / done * sum(weight[k - 1 :]):.0f} min left" if done and elapsed > 0 else ""


def machine() -> str:
    """The hardware the arms train on, as the results name it."""
    if select_device().type == "cuda":
        return f"{torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda}), torch {torch.__version__}"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"CPU, {cores} cores, torch {torch.__version__}"


def summary(
    command: str,
    settings: TrainSettings,
    steps: int,
    rounds: int,
    cases: int,
    seed: int,
    arms: dict,
    start: float,
    test_cases: int = 0,
    fine_tune_steps: int = DEFAULT_FINETUNE_STEPS,
    bench: Optional[Benchmark] = None,
) -> dict:
    """What a study (or a comparison of its arms) ran and how long it took, around the arms' results."""
    bench = bench or benchmark()
    tuned = any(a.startswith(FINETUNED) for a in arms)
    splits = site_splits(bench, cases, test_cases)
    same_split = bench.name == REFERENCE
    return {
        "command": command,
        "machine": machine(),
        "benchmark": bench.name,
        "job": bench.job,
        "settings": settings.to_dict(),
        "steps": steps,
        "rounds": rounds,
        **({"cases_per_site": sum(data_split(cases, test_cases))} if same_split else {}),
        **({"split": list(data_split(cases, test_cases))} if same_split else {}),
        "seed": seed,
        **({"fine_tune": {"steps": fine_tune_steps, "learning_rate": FINETUNE_LEARNING_RATE}} if tuned else {}),
        "sites": {s.name: {"grade": s.grade, "profile": s.profile, "split": list(splits[s.name])} for s in bench.specs},
        "arms": arms,
        "minutes": round((time.time() - start) / 60, 1),
        "arm_minutes": round(sum(a["minutes"] for a in arms.values()), 1),
    }


def run_study(
    out: str,
    docs: str,
    cases: int,
    steps: int,
    rounds: int,
    seed: int,
    arms: List[str],
    command: str,
    overrides: Optional[dict] = None,
    name: str = RESULTS,
    test_cases: int = 0,
    fine_tune_steps: int = DEFAULT_FINETUNE_STEPS,
    benchmark_name: str = REFERENCE,
    algorithm_args: Optional[Dict[str, dict]] = None,
) -> dict:
    """Run (or reuse) every arm, then write the tables and the plot into ``docs`` (``<name>.md``, ``.json``,
    ``_curves.png``); ``overrides`` change the recipe, ``algorithm_args`` the methods' arguments
    (``{method: {name: value}}``)."""
    start = time.time()
    bench = benchmark(benchmark_name)
    print(
        f"[study] {bench.name} benchmark ({', '.join(bench.sites)}), arms {' '.join(arms)}: data, models and logs "
        f"under {os.path.abspath(out)}, results into {os.path.join(docs, name)}.md",
        flush=True,
    )
    data_root = study_data(out, cases, seed, test_cases, bench)
    settings = recipe().replace(seed=seed, **(overrides or {}))
    val_every = steps // rounds
    key = fingerprint(settings, steps, rounds, val_every, cases, seed, test_cases, bench)
    loaders = test_loaders(data_root, settings, bench.sites)
    presence = test_presence(data_root, settings, bench.sites)
    results = {}
    for k, arm in enumerate(arms, 1):
        elapsed = (time.time() - start) / 60
        print(
            f"[study] arm {k}/{len(arms)}: {arm} ({elapsed:.1f} min since the start{eta(elapsed, k, arms)})", flush=True
        )
        job = method_job(arm, algorithm_args)
        results[arm] = run_arm(arm, data_root, out, settings, steps, rounds, key, loaders, job, fine_tune_steps, bench)
    study = summary(command, settings, steps, rounds, cases, seed, results, start, test_cases, fine_tune_steps, bench)
    study["test_presence"] = presence
    paths = write_results(study, docs, name)
    print(
        f"[study] done in {study['minutes']:.1f} min; results: {', '.join(paths)}; models and logs: "
        f"{os.path.abspath(out)}",
        flush=True,
    )
    return study


def render(docs: str, name: str, out: str) -> List[str]:
    """Write ``<name>.md`` and its curves again from ``<docs>/<name>.json``, without training; results recorded
    before the evaluation counted regions get their counts from the study's data, made again where it is missing."""
    path = os.path.join(docs, f"{name}.json")
    with open(path) as f:
        study = json.load(f)
    if "test_presence" not in study:
        split = study.get("split") or list(data_split(study["cases_per_site"]))
        cases, test_cases = recorded_cases(split)
        data_out = os.path.join(out, f"render-seed-{study['seed']}-{'-'.join(map(str, split))}")
        data_root = study_data(data_out, cases, study["seed"], test_cases)
        settings = TrainSettings.from_dict(study["settings"])
        study["test_presence"] = test_presence(data_root, settings, list(study["sites"]))
        add_region_counts(study, study["test_presence"])
    return write_results(study, docs, name)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--benchmark",
        choices=BENCHMARKS,
        default=REFERENCE,
        help="reference: site-1 (HGG) and site-2 (LGG), --cases each; hetero: the four unequal sites of the "
        "brats_hetero job, each with its own cases, grades and scanner profile",
    )
    parser.add_argument(
        "--out",
        help=f"data, models and logs of every arm (default {BENCHMARK_OUT[REFERENCE]}; hetero: "
        f"{BENCHMARK_OUT[HETERO]})",
    )
    parser.add_argument(
        "--render",
        action="store_true",
        help="write <docs>/<name>.md and its curves again from <docs>/<name>.json, without training",
    )
    parser.add_argument("--docs", default="docs", help="folder for the results' Markdown, JSON and curves PNG")
    parser.add_argument(
        "--name",
        help=f"their file names' stem: <name>.md, <name>.json, ... (default {BENCHMARK_RESULTS[REFERENCE]}; hetero: "
        f"{BENCHMARK_RESULTS[HETERO]})",
    )
    parser.add_argument(
        "--cases",
        type=int,
        default=DEFAULT_CASES,
        help="synthetic cases per site of the reference benchmark, about 70/15/15 %% (24: 16 train, 4 val, 4 test); "
        "hetero's sites have their own",
    )
    parser.add_argument(
        "--test-cases",
        type=int,
        default=DEFAULT_TEST_CASES,
        help="test cases per site, generated beyond each site's own test split where more (default 12)",
    )
    parser.add_argument(
        "--steps", type=int, default=DEFAULT_STEPS, help="optimiser steps per arm, counted over all sites"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        help=f"rounds of the federated arms; also the validations of every arm (default {BENCHMARK_ROUNDS[REFERENCE]}; "
        f"hetero: {BENCHMARK_ROUNDS[HETERO]})",
    )
    parser.add_argument(
        "--finetune-steps",
        type=int,
        default=DEFAULT_FINETUNE_STEPS,
        help="steps of each finetuned-<site> arm: FedAvg's final global model trained on the site's own cases",
    )
    parser.add_argument(
        "--arms",
        nargs="+",
        metavar="ARM",
        help=f"default: {' '.join(arm_names(['<site>']))} for every site of the benchmark; finetuned-<site> arms need "
        "the fedavg arm first",
    )
    parser.add_argument(
        "--algorithm-arg",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an argument of the method that takes NAME over its default (fedprox: mu; fedopt: optimizer, lr, "
        "momentum; ditto: lambda); repeatable",
    )
    add_settings_arguments(parser)  # the recipe's overrides, e.g. the reference crop on a GPU; --seed seeds all


def run(args: argparse.Namespace) -> None:
    bench = benchmark(args.benchmark)
    out = args.out or BENCHMARK_OUT[bench.name]
    name = args.name or BENCHMARK_RESULTS[bench.name]
    if args.render:
        print(f"[study] written again: {', '.join(render(args.docs, name, out))}")
        return
    rounds = args.rounds or BENCHMARK_ROUNDS[bench.name]
    known = arm_names(bench.sites)
    arms = args.arms or list(known)
    unknown = [a for a in arms if a not in known]
    if unknown:
        raise SystemExit(
            f"--arms: no arm {', '.join(unknown)} in the {bench.name} benchmark; its arms: {' '.join(known)}"
        )
    if args.steps % (len(bench.sites) * rounds):
        raise SystemExit(f"--steps must be a multiple of {len(bench.sites)} x --rounds")
    if args.finetune_steps < 1:
        raise SystemExit("--finetune-steps must be at least 1")
    algorithm_args = route_algorithm_args(args.algorithm_arg)
    overrides = settings_overrides(args)
    seed = overrides.pop("seed", 0)
    values = (("cases", args.cases),) if bench.name == REFERENCE else (("benchmark", bench.name),)
    values += (("test-cases", args.test_cases), ("steps", args.steps), ("rounds", rounds), ("seed", seed))
    if any(a.startswith(FINETUNED) for a in arms):
        values += (("finetune-steps", args.finetune_steps),)
    command = "fedbrats study " + " ".join(f"--{k} {v}" for k, v in values)
    command += "".join(f" --algorithm-arg {a}" for a in args.algorithm_arg)
    if arms != list(known):
        command += " --arms " + " ".join(arms)
    if name != BENCHMARK_RESULTS[bench.name]:
        command += f" --name {name}"
    if overrides:
        command += f" (recipe overrides {json.dumps(overrides, sort_keys=True)})"
    run_study(
        out,
        args.docs,
        args.cases,
        args.steps,
        rounds,
        seed,
        arms,
        command,
        overrides,
        name,
        args.test_cases,
        args.finetune_steps,
        bench.name,
        algorithm_args,
    )

"""Accuracy study: centralised, FedAvg and local-only training on one synthetic data set, equal step budget.

Every arm takes the same number of optimiser steps, counted over all sites (FedAvg's two sites take half
each per round, as an epoch of the union equals an epoch of each site), and every arm's final and best
model is evaluated the same way on every site's test split. The fine-tuned arms start from FedAvg's final
global model and train a few more steps at one site on its own cases: what a site gets by adapting the
federation's model to its own scans.
"""

import argparse
import json
import os
import time
from typing import Dict, List, Optional, Tuple

import torch
from monai.utils import set_determinism

from fedbrats.evaluation.report import site_result, weighted_average
from fedbrats.federation.build_job import build_job
from fedbrats.federation.catalog import DEMO_JOB
from fedbrats.federation.training import STUDY_TRAINING
from fedbrats.prepare.synthetic import split_sizes, write_sites
from fedbrats.research.study_report import RESULTS, write_results
from fedbrats.runners.simulate import run_simulator
from fedbrats.runners.train import BEST_MODEL, LAST_MODEL, fit
from fedbrats.runtime.constants import (
    CENTRAL_SITE,
    DICE,
    MEAN_DICE,
    N_CASES,
    PER_CASE,
    REGIONS,
    SITE_GRADES,
    metric_name,
)
from fedbrats.runtime.data.datalist import write_json
from fedbrats.runtime.data.loaders import site_loader
from fedbrats.runtime.engine import SegmentationEngine, evaluate, select_device
from fedbrats.runtime.fl.model_selector import SELECTION_FILE
from fedbrats.runtime.fl.site_data import write_site_settings
from fedbrats.runtime.metrics import region_counts
from fedbrats.runtime.model import build_model, load_weights
from fedbrats.runtime.settings import TrainSettings, add_settings_arguments, settings_overrides

SITES = list(SITE_GRADES)
FEDAVG, FINETUNED = "fedavg", "finetuned"
ARMS = ("central", FEDAVG) + tuple(f"{FINETUNED}-{s}" for s in SITES) + tuple(f"local-{s}" for s in SITES)
DONE_FILE = "arm.json"
EVALUATION_VERSION = 2
"""How the arms are evaluated, part of every arm's reuse key: an arm scored by other evaluation code is run again.
2: region counts (cases holding each region, Dice on them, cases scored 1 by the empty-region rule)."""
DATA_FILE = "study_data.json"
DEFAULT_CASES, DEFAULT_TEST_CASES, DEFAULT_STEPS, DEFAULT_ROUNDS = 24, 12, 2500, 50
"""The default study: synthetic cases per site (16 training, 4 validation), test cases per site, optimiser steps per
arm (over all sites), FedAvg rounds."""
DEFAULT_FINETUNE_STEPS, FINETUNE_LEARNING_RATE = 250, 5e-4
"""Steps with which a site fine-tunes FedAvg's final global model on its own training cases (a tenth of the study's
budget), and their learning rate, decaying along the recipe's cosine: a quarter of the recipe's starting rate, as
the model is trained already."""


def recipe() -> TrainSettings:
    """The study's recipe: the CPU recipe on 32^3 crops (docs/training.md)."""
    return TrainSettings.from_dict(STUDY_TRAINING)


def data_split(cases: int, test_cases: int = 0) -> Tuple[int, int, int]:
    """Training, validation and test cases per site: ``cases`` split about 70/15/15, its test share raised to
    ``test_cases`` (more held-out cases cost no training, and steady the comparison)."""
    train, val, test = split_sizes(cases)
    return train, val, max(test, test_cases)


def datalist_path(data_root: str, site: str) -> str:
    return os.path.join(data_root, "datalists", f"{site}.json")


def arm_sites(arm: str) -> List[str]:
    """The sites whose training data an arm sees (``fedavg-<privacy>`` arms are FedAvg with a privacy filter;
    ``local-<site>`` and ``finetuned-<site>`` arms train at one site)."""
    return SITES if arm == "central" or arm.startswith(FEDAVG) else [arm.split("-", 1)[1]]


def local_arm(
    arm: str,
    data_root: str,
    arm_dir: str,
    settings: TrainSettings,
    steps: int,
    val_every: int,
    init: str = "",
    first_step: int = 0,
) -> dict:
    """Central (union of every site's cases), local-only or fine-tuning training in one process, no FLARE.
    ``init``: the model to start from; ``first_step``: the steps it took already (the curve continues from there)."""
    site = CENTRAL_SITE if arm == "central" else arm_sites(arm)[0]
    set_determinism(settings.seed)
    engine = SegmentationEngine(settings.replace(num_threads=0))
    if init:
        load_weights(engine.model, init)
    datalist = datalist_path(data_root, site)
    train = site_loader(datalist, data_root, "training", engine.settings, train=True)
    val = site_loader(datalist, data_root, "validation", engine.settings, train=False)
    result = fit(engine, train, val, arm_dir, steps, val_every, label=arm)
    curve = [
        {"steps": first_step + h["steps"], MEAN_DICE: h["validation"][MEAN_DICE], N_CASES: h["validation"][N_CASES]}
        for h in result["history"]
    ]
    return {"curve": curve, "final": os.path.join(arm_dir, LAST_MODEL), "best": os.path.join(arm_dir, BEST_MODEL)}


def fedavg_arm(
    data_root: str, arm_dir: str, settings: TrainSettings, steps: int, rounds: int, job: Optional[dict] = None
) -> dict:
    """FedAvg through FLARE's simulator: each site takes ``steps / (sites x rounds)`` steps per round.
    ``job``: further job values, e.g. a privacy filter."""
    local_steps = steps // (len(SITES) * rounds)
    training = {**settings.to_dict(), "local_steps": local_steps, "num_threads": 1}
    overrides = {**(job or {}), "num_rounds": rounds, "training": training}
    job_dir = build_job(DEMO_JOB, os.path.join(arm_dir, "jobs"), overrides)
    site_data = {s: {"data_root": data_root, "datalist": datalist_path(data_root, s)} for s in SITES}
    site_settings = write_site_settings(os.path.join(arm_dir, "sites.json"), site_data)
    workspace = os.path.join(arm_dir, "sim")
    run_simulator(job_dir, workspace, SITES, len(SITES), site_settings)
    server = fedavg_server_dir(arm_dir)
    with open(os.path.join(server, SELECTION_FILE)) as f:
        selection = json.load(f)
    check_every_round(selection, rounds)
    curve = [
        {
            "steps": h["round"] * local_steps * len(SITES),
            MEAN_DICE: h["score"],
            N_CASES: sum(s[N_CASES] for s in h["sites"].values()),
        }
        for h in selection["history"]
        if h["score"] is not None
    ]
    return {
        "curve": curve,
        "final": os.path.join(server, "FL_global_model.pt"),
        "best": os.path.join(server, "best_FL_global_model.pt"),
        "best_round": selection["best_round"],
    }


def check_every_round(selection: dict, rounds: int) -> None:
    """Refuse a FedAvg arm in which a round did not complete with every site: its models would not be what the
    budget says. Every round from 1 to ``rounds`` (the last: the final model's scoring) must be scored by every site."""
    scored = {h["round"]: sorted(h.get("sites", {})) for h in selection.get("history", [])}
    short = [f"round {r}: {', '.join(scored.get(r, [])) or 'no site'}" for r in range(1, rounds + 1)]
    short = [s for r, s in zip(range(1, rounds + 1), short) if scored.get(r) != sorted(SITES)]
    if short or selection.get("lost"):
        raise SystemExit(
            f"the FedAvg arm did not complete every round with every site ({', '.join(SITES)}): "
            f"{'; '.join(short) or 'sites lost: ' + ', '.join(selection['lost'])}"
        )


def fedavg_server_dir(arm_dir: str) -> str:
    """Where a FedAvg arm's simulator run keeps the server's models and in-time selection."""
    return os.path.join(arm_dir, "sim", "server", "simulate_job", "app_server")


def finetuned_arm(
    arm: str, data_root: str, out: str, settings: TrainSettings, steps: int, fine_tune_steps: int
) -> dict:
    """FedAvg's final global model (``out``'s FedAvg arm), trained ``fine_tune_steps`` more steps at one site."""
    fedavg_dir = os.path.join(out, "arms", FEDAVG)
    if not os.path.isfile(os.path.join(fedavg_dir, DONE_FILE)):
        raise SystemExit(
            f"{arm} fine-tunes FedAvg's final global model: run the {FEDAVG} arm first (--arms {FEDAVG} {arm})"
        )
    start = os.path.join(fedavg_server_dir(fedavg_dir), "FL_global_model.pt")
    tuned = settings.replace(learning_rate=FINETUNE_LEARNING_RATE)
    val_every = max(fine_tune_steps // 5, 1)
    arm_dir = os.path.join(out, "arms", arm)
    return local_arm(arm, data_root, arm_dir, tuned, fine_tune_steps, val_every, init=start, first_step=steps)


def test_loaders(data_root: str, settings: TrainSettings) -> Dict[str, object]:
    return {s: site_loader(datalist_path(data_root, s), data_root, "testing", settings, train=False) for s in SITES}


def evaluate_model(path: str, settings: TrainSettings, loaders: Dict[str, object]) -> dict:
    """Dice of one model file on every site's test split and the case-weighted average."""
    model = load_weights(build_model(settings), path)
    per_site = {s: site_result(evaluate(model, loader, settings, torch.device("cpu"))) for s, loader in loaders.items()}
    return {"sites": per_site, "average": weighted_average(per_site)}


def fingerprint(
    settings: TrainSettings, steps: int, rounds: int, val_every: int, cases: int, seed: int, test_cases: int = 0
) -> dict:
    """What a finished arm must match to be reused: its training, and the version of the evaluation that scored it."""
    key = {
        "evaluation": EVALUATION_VERSION,
        "settings": settings.to_dict(),
        "steps": steps,
        "rounds": rounds,
        "val_every": val_every,
        "cases": cases,
        "seed": seed,
    }
    split = data_split(cases, test_cases)
    if split != data_split(cases):
        key["split"] = list(split)
    return key


def run_arm(
    arm: str,
    data_root: str,
    out: str,
    settings: TrainSettings,
    steps: int,
    rounds: int,
    key: dict,
    loaders: Dict[str, object],
    job: Optional[dict] = None,
    fine_tune_steps: int = DEFAULT_FINETUNE_STEPS,
) -> dict:
    """Train and evaluate one arm, or reuse its result when an identical arm has finished before.
    ``job``: further job values of a FedAvg arm; they join ``key``, as a fine-tuned arm's steps and rate do."""
    key = {**key, "job": job} if job else key
    if arm.startswith(FINETUNED):
        key = {**key, "fine_tune": {"steps": fine_tune_steps, "learning_rate": FINETUNE_LEARNING_RATE}}
    arm_dir = os.path.join(out, "arms", arm)
    done_path = os.path.join(arm_dir, DONE_FILE)
    if os.path.isfile(done_path):
        with open(done_path) as f:
            previous = json.load(f)
        if previous.get("key") == key:
            print(f"[study] {arm}: finished before, reusing {done_path}", flush=True)
            return previous
    start = time.time()
    if arm.startswith(FINETUNED):
        print(f"[study] {arm}: fine-tuning FedAvg's final global model, {fine_tune_steps} steps", flush=True)
        trained = finetuned_arm(arm, data_root, out, settings, steps, fine_tune_steps)
    elif arm.startswith(FEDAVG):
        print(f"[study] {arm}: training {steps} steps on {', '.join(arm_sites(arm))}", flush=True)
        trained = fedavg_arm(data_root, arm_dir, settings, steps, rounds, job)
    else:
        print(f"[study] {arm}: training {steps} steps on {', '.join(arm_sites(arm))}", flush=True)
        trained = local_arm(arm, data_root, arm_dir, settings, steps, key["val_every"])
    train_minutes = (time.time() - start) / 60
    print(f"[study] {arm}: evaluating the final and the best model on every site's test split", flush=True)
    result = {
        "arm": arm,
        "key": key,
        "sites_trained_on": arm_sites(arm),
        "curve": trained["curve"],
        "train_minutes": round(train_minutes, 2),
        "models": {},
    }
    for which in ("final", "best"):
        result["models"][which] = {"path": trained[which], **evaluate_model(trained[which], settings, loaders)}
    if "best_round" in trained:
        result["best_round"] = trained["best_round"]
    result["minutes"] = round((time.time() - start) / 60, 2)
    write_json(done_path, result)
    average = result["models"]["final"]["average"]
    print(
        f"[study] {arm}: final model AVE mean Dice {average[MEAN_DICE]:.4f} ({result['minutes']:.1f} min)", flush=True
    )
    return result


def study_data(out: str, cases: int, seed: int, test_cases: int = 0) -> str:
    """The study's synthetic sites under ``out/data``, written unless they are there; returns the data root.
    Data written for another size or seed is an error: the arms would not be comparable."""
    data_root = os.path.join(out, "data")
    split = data_split(cases, test_cases)
    wanted = {"split": list(split), "seed": seed}
    marker = os.path.join(data_root, DATA_FILE)
    if os.path.isfile(datalist_path(data_root, CENTRAL_SITE)):
        found = None
        if os.path.isfile(marker):
            with open(marker) as f:
                found = json.load(f)
        if found not in (None, wanted):
            raise SystemExit(
                f"{data_root} holds synthetic data of split {found['split']} and seed {found['seed']}, not "
                f"{list(split)} and {seed}; choose another --out"
            )
        return data_root
    sizes = "/".join(map(str, split))
    print(f"[study] writing {sum(split)} synthetic cases per site ({sizes}) to {data_root}", flush=True)
    write_sites(data_root, SITES, sum(split), "reduced", seed, split=split)
    write_json(marker, wanted)
    return data_root


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
) -> dict:
    """What a study (or a comparison of its arms) ran and how long it took, around the arms' results."""
    tuned = any(a.startswith(FINETUNED) for a in arms)
    return {
        "command": command,
        "machine": machine(),
        "settings": settings.to_dict(),
        "steps": steps,
        "rounds": rounds,
        "cases_per_site": sum(data_split(cases, test_cases)),
        "split": list(data_split(cases, test_cases)),
        "seed": seed,
        **({"fine_tune": {"steps": fine_tune_steps, "learning_rate": FINETUNE_LEARNING_RATE}} if tuned else {}),
        "sites": {s: SITE_GRADES[s] for s in SITES},
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
) -> dict:
    """Run (or reuse) every arm, then write the tables and the plot into ``docs`` (``<name>.md``, ``.json``,
    ``_curves.png``); ``overrides`` change the recipe."""
    start = time.time()
    data_root = study_data(out, cases, seed, test_cases)
    settings = recipe().replace(seed=seed, **(overrides or {}))
    val_every = steps // rounds
    key = fingerprint(settings, steps, rounds, val_every, cases, seed, test_cases)
    loaders = test_loaders(data_root, settings)
    presence = test_presence(data_root, settings)
    results = {}
    for k, arm in enumerate(arms, 1):
        print(f"[study] arm {k}/{len(arms)}: {arm}", flush=True)
        results[arm] = run_arm(arm, data_root, out, settings, steps, rounds, key, loaders, None, fine_tune_steps)
    study = summary(command, settings, steps, rounds, cases, seed, results, start, test_cases, fine_tune_steps)
    study["test_presence"] = presence
    paths = write_results(study, docs, name)
    print(
        f"[study] done in {study['minutes']:.1f} min; results: {', '.join(paths)}; models and logs: "
        f"{os.path.abspath(out)}",
        flush=True,
    )
    return study


def test_presence(data_root: str, settings: TrainSettings) -> Dict[str, Dict[str, List[float]]]:
    """For every site's test cases, in their order, whether each region is in the reference as the arms were scored
    (the labels preprocessed with ``settings``): ``{site: {region: [1.0 or 0.0 per case]}}``."""
    presence = {}
    for site, loader in test_loaders(data_root, settings).items():
        labels = [batch["label"][0] for batch in loader]
        presence[site] = {r: [float(label[k].any()) for label in labels] for k, r in enumerate(REGIONS)}
    return presence


def add_region_counts(study: dict, presence: Dict[str, Dict[str, List[float]]]) -> None:
    """Give every site result of ``study`` that has per-case Dice its region counts, and every model its average
    again (results recorded before the evaluation counted regions)."""
    for arm in study["arms"].values():
        for model in arm["models"].values():
            for site, result in model["sites"].items():
                if result is not None and PER_CASE in result:
                    for region in REGIONS:
                        dice = result[PER_CASE][metric_name(DICE, region)]
                        result.update(region_counts(dice, presence[site][region], region))
            model["average"] = weighted_average(model["sites"])


def recorded_cases(split: List[int]) -> Tuple[int, int]:
    """(``--cases``, ``--test-cases``) of a recorded split."""
    cases = next(n for n in range(3, 10 * sum(split)) if data_split(n, split[2]) == tuple(split))
    return cases, split[2]


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
        study["test_presence"] = test_presence(data_root, TrainSettings.from_dict(study["settings"]))
        add_region_counts(study, study["test_presence"])
    return write_results(study, docs, name)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="workspace/study", help="data, models and logs of every arm")
    parser.add_argument(
        "--render",
        action="store_true",
        help="write <docs>/<name>.md and its curves again from <docs>/<name>.json, without training",
    )
    parser.add_argument("--docs", default="docs", help="folder for the results' Markdown, JSON and curves PNG")
    parser.add_argument("--name", default=RESULTS, help="their file names' stem: <name>.md, <name>.json, ...")
    parser.add_argument(
        "--cases",
        type=int,
        default=DEFAULT_CASES,
        help="synthetic cases per site, about 70/15/15 %% (24: 16 train, 4 val, 4 test)",
    )
    parser.add_argument(
        "--test-cases",
        type=int,
        default=DEFAULT_TEST_CASES,
        help="test cases per site, generated beyond --cases' own test split where more (default 12)",
    )
    parser.add_argument(
        "--steps", type=int, default=DEFAULT_STEPS, help="optimiser steps per arm, counted over all sites"
    )
    parser.add_argument(
        "--rounds", type=int, default=DEFAULT_ROUNDS, help="FedAvg rounds; also the validations of every arm"
    )
    parser.add_argument(
        "--finetune-steps",
        type=int,
        default=DEFAULT_FINETUNE_STEPS,
        help="steps of each finetuned-<site> arm: FedAvg's final global model trained on the site's own cases",
    )
    parser.add_argument(
        "--arms", nargs="+", choices=ARMS, default=list(ARMS), help="finetuned-<site> arms need the fedavg arm first"
    )
    add_settings_arguments(parser)  # the recipe's overrides, e.g. the reference crop on a GPU; --seed seeds all


def run(args: argparse.Namespace) -> None:
    if args.render:
        print(f"[study] written again: {', '.join(render(args.docs, args.name, args.out))}")
        return
    if args.steps % (len(SITES) * args.rounds):
        raise SystemExit(f"--steps must be a multiple of {len(SITES)} x --rounds")
    if args.finetune_steps < 1:
        raise SystemExit("--finetune-steps must be at least 1")
    overrides = settings_overrides(args)
    seed = overrides.pop("seed", 0)
    values = (
        ("cases", args.cases),
        ("test-cases", args.test_cases),
        ("steps", args.steps),
        ("rounds", args.rounds),
        ("seed", seed),
    )
    if any(a.startswith(FINETUNED) for a in args.arms):
        values += (("finetune-steps", args.finetune_steps),)
    command = "fedbrats study " + " ".join(f"--{k} {v}" for k, v in values)
    if args.arms != list(ARMS):
        command += " --arms " + " ".join(args.arms)
    if args.name != RESULTS:
        command += f" --name {args.name}"
    if overrides:
        command += f" (recipe overrides {json.dumps(overrides, sort_keys=True)})"
    run_study(
        args.out,
        args.docs,
        args.cases,
        args.steps,
        args.rounds,
        seed,
        args.arms,
        command,
        overrides,
        args.name,
        args.test_cases,
        args.finetune_steps,
    )

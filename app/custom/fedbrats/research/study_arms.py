"""Training and evaluating one arm of the accuracy study: centralised, local-only, federated (every aggregation
method) or fine-tuned, and the key under which a finished arm is reused.

Every arm takes the same number of optimiser steps, counted over all sites (a federated arm's sites each take
``steps / (sites x rounds)`` per round, as an epoch of the union equals an epoch of each site; Ditto's sites train
their personal model as many steps again), and every arm's final and best model is evaluated the same way on every
site's test split. The fine-tuned arms start from FedAvg's final global model and train a few more steps at one site
on its own cases: what a site gets by adapting the federation's model to its own scans.
"""

import json
import os
import time
from typing import Dict, List, Optional, Sequence

import torch
from monai.utils import set_determinism

from fedbrats.evaluation.report import site_result, weighted_average
from fedbrats.federation.build_job import build_job
from fedbrats.research.study_data import REFERENCE, Benchmark, benchmark, data_split, datalist_path, site_splits
from fedbrats.research.study_methods import FINETUNED
from fedbrats.runners.simulate import run_simulator
from fedbrats.runners.train import BEST_MODEL, LAST_MODEL, fit
from fedbrats.runtime.constants import CENTRAL_SITE, MEAN_DICE, N_CASES
from fedbrats.runtime.data.datalist import write_json
from fedbrats.runtime.data.loaders import site_loader
from fedbrats.runtime.engine import SegmentationEngine, evaluate
from fedbrats.runtime.fl.algorithms import ALGORITHMS, PERSONALISED, algorithm_arguments
from fedbrats.runtime.fl.executor import BEST_LOCAL_MODEL
from fedbrats.runtime.fl.model_selector import SELECTION_FILE
from fedbrats.runtime.fl.site_data import write_site_settings
from fedbrats.runtime.model import build_model, load_weights
from fedbrats.runtime.settings import TrainSettings

CENTRAL, FEDAVG, LOCAL = "central", "fedavg", "local"
METHODS = ALGORITHMS
"""The aggregation methods, each an arm of its name: the FedAvg arm's simulator run with the job's ``algorithm``."""
DONE_FILE = "arm.json"
EVALUATION_VERSION = 3
"""How the arms are evaluated, part of every arm's reuse key: an arm scored by other evaluation code is run again.
2: region counts (cases holding each region, Dice on them, cases scored 1 by the empty-region rule).
3: sensitivity and specificity of every region in every score; Ditto's personal models scored on their own sites."""
DEFAULT_FINETUNE_STEPS, FINETUNE_LEARNING_RATE = 250, 5e-4
"""Steps with which a site fine-tunes FedAvg's final global model on its own training cases (a tenth of the study's
budget), and their learning rate, decaying along the recipe's cosine: a quarter of the recipe's starting rate, as
the model is trained already."""


def federated_method(arm: str) -> Optional[str]:
    """The aggregation method of a federated arm (``fedavg-<privacy>``: FedAvg with a privacy filter), else None."""
    if arm in METHODS:
        return arm
    return FEDAVG if arm.startswith(f"{FEDAVG}-") else None


def arm_sites(arm: str, sites: Sequence[str]) -> List[str]:
    """The sites whose training data an arm sees: every one of ``sites`` for the centralised and the federated arms,
    one for ``local-<site>`` and ``finetuned-<site>``."""
    return list(sites) if arm == CENTRAL or federated_method(arm) else [arm.split("-", 1)[1]]


def method_job(arm: str, given: Optional[Dict[str, dict]] = None) -> Optional[dict]:
    """Job values of a method arm other than FedAvg: its ``algorithm`` and arguments (the defaults with ``given[arm]``
    over them); None for every other arm (the FedAvg arm runs the job as it is)."""
    if arm not in METHODS or arm == FEDAVG:
        return None
    return {"algorithm": arm, "algorithm_args": algorithm_arguments(arm, (given or {}).get(arm))}


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
    site = CENTRAL_SITE if arm == CENTRAL else arm.split("-", 1)[1]
    set_determinism(settings.seed)
    engine = SegmentationEngine(settings.replace(num_threads=0))
    if init:
        load_weights(engine.model, init)
    datalist = datalist_path(data_root, site)
    train = site_loader(datalist, data_root, "training", engine.settings, train=True)
    val = site_loader(datalist, data_root, "validation", engine.settings, train=False)
    result = fit(engine, train, val, arm_dir, steps, val_every, label=arm)
    curve = [
        {
            "steps": first_step + h["steps"],
            MEAN_DICE: h["validation"][MEAN_DICE],
            N_CASES: h["validation"][N_CASES],
            "seconds": h["seconds"],
        }
        for h in result["history"]
    ]
    return {"curve": curve, "final": os.path.join(arm_dir, LAST_MODEL), "best": os.path.join(arm_dir, BEST_MODEL)}


def federated_arm(
    data_root: str,
    arm_dir: str,
    settings: TrainSettings,
    steps: int,
    rounds: int,
    job: Optional[dict] = None,
    bench: Optional[Benchmark] = None,
    arm: str = FEDAVG,
) -> dict:
    """The benchmark's job through FLARE's simulator, each site taking ``steps / (sites x rounds)`` steps per round.
    ``job``: further job values, e.g. another ``algorithm`` or a privacy filter. A personalised method's arm also
    names each site's best personal model (``personal``)."""
    bench = bench or benchmark()
    sites = bench.sites
    local_steps = steps // (len(sites) * rounds)
    training = {**settings.to_dict(), "local_steps": local_steps, "num_threads": 1}
    overrides = {**(job or {}), "num_rounds": rounds, "training": training}
    job_dir = build_job(bench.job, os.path.join(arm_dir, "jobs"), overrides)
    site_data = {s: {"data_root": data_root, "datalist": datalist_path(data_root, s)} for s in sites}
    site_settings = write_site_settings(os.path.join(arm_dir, "sites.json"), site_data)
    workspace = os.path.join(arm_dir, "sim")
    run_simulator(job_dir, workspace, sites, len(sites), site_settings)
    server = federated_server_dir(arm_dir)
    with open(os.path.join(server, SELECTION_FILE)) as f:
        selection = json.load(f)
    check_every_round(selection, rounds, sites, arm)
    curve = [
        {
            "steps": h["round"] * local_steps * len(sites),
            MEAN_DICE: h["score"],
            N_CASES: sum(s[N_CASES] for s in h["sites"].values()),
            **({"seconds": h["seconds"]} if "seconds" in h else {}),
        }
        for h in selection["history"]
        if h["score"] is not None
    ]
    trained = {
        "curve": curve,
        "final": os.path.join(server, "FL_global_model.pt"),
        "best": os.path.join(server, "best_FL_global_model.pt"),
        "best_round": selection["best_round"],
    }
    if (job or {}).get("algorithm") in PERSONALISED:
        trained["personal"] = {s: personal_model_path(arm_dir, s) for s in sites}
    return trained


def check_every_round(selection: dict, rounds: int, sites: Sequence[str], arm: str = FEDAVG) -> None:
    """Refuse a federated arm in which a round did not complete with every site: its models would not be what the
    budget says. Every round from 1 to ``rounds`` (the last: the final model's scoring) must be scored by every site."""
    scored = {h["round"]: sorted(h.get("sites", {})) for h in selection.get("history", [])}
    short = [f"round {r}: {', '.join(scored.get(r, [])) or 'no site'}" for r in range(1, rounds + 1)]
    short = [s for r, s in zip(range(1, rounds + 1), short) if scored.get(r) != sorted(sites)]
    if short or selection.get("lost"):
        raise SystemExit(
            f"the {arm} arm did not complete every round with every site ({', '.join(sites)}): "
            f"{'; '.join(short) or 'sites lost: ' + ', '.join(selection['lost'])}"
        )


def federated_server_dir(arm_dir: str) -> str:
    """Where a federated arm's simulator run keeps the server's models and in-time selection."""
    return os.path.join(arm_dir, "sim", "server", "simulate_job", "app_server")


def personal_model_path(arm_dir: str, site: str) -> str:
    """A personalised arm's best personal model of ``site``, kept in the site's app folder of the simulator run."""
    return os.path.join(arm_dir, "sim", site, "simulate_job", f"app_{site}", BEST_LOCAL_MODEL)


def finetuned_arm(
    arm: str, data_root: str, out: str, settings: TrainSettings, steps: int, fine_tune_steps: int
) -> dict:
    """FedAvg's final global model (``out``'s FedAvg arm), trained ``fine_tune_steps`` more steps at one site."""
    fedavg_dir = os.path.join(out, "arms", FEDAVG)
    if not os.path.isfile(os.path.join(fedavg_dir, DONE_FILE)):
        raise SystemExit(
            f"{arm} fine-tunes FedAvg's final global model: run the {FEDAVG} arm first (--arms {FEDAVG} {arm})"
        )
    start = os.path.join(federated_server_dir(fedavg_dir), "FL_global_model.pt")
    tuned = settings.replace(learning_rate=FINETUNE_LEARNING_RATE)
    val_every = max(fine_tune_steps // 5, 1)
    arm_dir = os.path.join(out, "arms", arm)
    return local_arm(arm, data_root, arm_dir, tuned, fine_tune_steps, val_every, init=start, first_step=steps)


def evaluate_model(path: str, settings: TrainSettings, loaders: Dict[str, object]) -> dict:
    """Dice of one model file on every site's test split and the case-weighted average."""
    model = load_weights(build_model(settings), path)
    per_site = {s: site_result(evaluate(model, loader, settings, torch.device("cpu"))) for s, loader in loaders.items()}
    return {"sites": per_site, "average": weighted_average(per_site)}


def evaluate_personal(paths: Dict[str, str], settings: TrainSettings, loaders: Dict[str, object]) -> dict:
    """Each site's personal model on that site's own test split (the model the site uses), and their case-weighted
    average."""
    per_site = {s: evaluate_model(path, settings, {s: loaders[s]})["sites"][s] for s, path in paths.items()}
    return {"paths": dict(paths), "sites": per_site, "average": weighted_average(per_site)}


def fingerprint(
    settings: TrainSettings,
    steps: int,
    rounds: int,
    val_every: int,
    cases: int,
    seed: int,
    test_cases: int = 0,
    bench: Optional[Benchmark] = None,
) -> dict:
    """What a finished arm must match to be reused: its training, its data, and the version of the evaluation that
    scored it."""
    key = {
        "evaluation": EVALUATION_VERSION,
        "settings": settings.to_dict(),
        "steps": steps,
        "rounds": rounds,
        "val_every": val_every,
        "cases": cases,
        "seed": seed,
    }
    bench = bench or benchmark()
    if bench.name == REFERENCE:
        split = data_split(cases, test_cases)
        if split != data_split(cases):
            key["split"] = list(split)
        return key
    del key["cases"]
    splits = site_splits(bench, cases, test_cases)
    key.update(
        benchmark=bench.name, sites=[str(s) for s in bench.specs], splits={s: list(v) for s, v in splits.items()}
    )
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
    bench: Optional[Benchmark] = None,
) -> dict:
    """Train and evaluate one arm, or reuse its result when an identical arm has finished before.
    ``job``: further job values of a federated arm (its algorithm and arguments, a privacy filter); they join
    ``key``, as a fine-tuned arm's steps and rate do."""
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
    sites = arm_sites(arm, (bench or benchmark()).sites)
    where = f"models and logs in {os.path.abspath(arm_dir)}"
    if arm.startswith(FINETUNED):
        print(f"[study] {arm}: fine-tuning FedAvg's final global model, {fine_tune_steps} steps; {where}", flush=True)
        trained = finetuned_arm(arm, data_root, out, settings, steps, fine_tune_steps)
    elif federated_method(arm):
        method = (job or {}).get("algorithm", FEDAVG)
        args = (job or {}).get("algorithm_args") or {}
        personal = " (and as many on its personal model)" if method in PERSONALISED else ""
        print(
            f"[study] {arm}: {method}{' ' + json.dumps(args, sort_keys=True) if args else ''} in FLARE's simulator, "
            f"{rounds} rounds of {steps // (len(sites) * rounds)} steps{personal} at each of {', '.join(sites)}; "
            f"{where}",
            flush=True,
        )
        trained = federated_arm(data_root, arm_dir, settings, steps, rounds, job, bench, arm)
    else:
        print(f"[study] {arm}: training {steps} steps on {', '.join(sites)}; {where}", flush=True)
        trained = local_arm(arm, data_root, arm_dir, settings, steps, key["val_every"])
    train_minutes = (time.time() - start) / 60
    print(f"[study] {arm}: evaluating the final and the best model on every site's test split", flush=True)
    result = {
        "arm": arm,
        "key": key,
        "sites_trained_on": sites,
        "curve": trained["curve"],
        "train_minutes": round(train_minutes, 2),
        "models": {},
    }
    for which in ("final", "best"):
        result["models"][which] = {"path": trained[which], **evaluate_model(trained[which], settings, loaders)}
    if "personal" in trained:
        print(f"[study] {arm}: evaluating each site's best personal model on its own test split", flush=True)
        result["personal"] = evaluate_personal(trained["personal"], settings, loaders)
    if "best_round" in trained:
        result["best_round"] = trained["best_round"]
    result["minutes"] = round((time.time() - start) / 60, 2)
    write_json(done_path, result)
    average = result["models"]["final"]["average"]
    print(
        f"[study] {arm}: final model AVE mean Dice {average[MEAN_DICE]:.4f} ({result['minutes']:.1f} min); "
        f"result in {done_path}",
        flush=True,
    )
    return result

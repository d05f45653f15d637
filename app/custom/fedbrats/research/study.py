"""Accuracy study: centralised, every aggregation method and local-only training on one synthetic data set, equal
step budget.

Every arm takes the same number of optimiser steps, counted over all sites (a federated arm's sites each take
``steps / (sites x rounds)`` per round, as an epoch of the union equals an epoch of each site; Ditto's sites train
their personal model as many steps again), and every arm's final and best model is evaluated the same way on every
site's test split. The fine-tuned arms start from FedAvg's final global model and train a few more steps at one site
on its own cases: what a site gets by adapting the federation's model to its own scans.

Two benchmarks: ``reference``, the HGG and the LGG site of the reference federation with as many cases each, and
``hetero``, the four unequal sites of the ``brats_hetero`` job, each with its own cases, grades and scanner.
"""

import argparse
import dataclasses
import functools
import json
import os
import time
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from monai.utils import set_determinism

from fedbrats.evaluation.report import site_result, weighted_average
from fedbrats.federation.build_job import build_job
from fedbrats.federation.catalog import DEMO_JOB, job_definition
from fedbrats.federation.options import parse_named_values
from fedbrats.federation.training import STUDY_TRAINING
from fedbrats.prepare.site_specs import REFERENCE_SITES, SiteSpec, parse_sites
from fedbrats.prepare.synthetic import RECORD, read_record, split_sizes, write_sites
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
    metric_name,
)
from fedbrats.runtime.data.datalist import merge_datalists, write_json
from fedbrats.runtime.data.loaders import site_loader
from fedbrats.runtime.engine import SegmentationEngine, evaluate, select_device
from fedbrats.runtime.fl.algorithms import ALGORITHM_DEFAULTS, ALGORITHMS, PERSONALISED, algorithm_arguments
from fedbrats.runtime.fl.executor import BEST_LOCAL_MODEL
from fedbrats.runtime.fl.model_selector import SELECTION_FILE
from fedbrats.runtime.fl.site_data import write_site_settings
from fedbrats.runtime.metrics import region_counts
from fedbrats.runtime.model import build_model, load_weights
from fedbrats.runtime.settings import TrainSettings, add_settings_arguments, settings_overrides

REFERENCE, HETERO = "reference", "hetero"
BENCHMARKS = (REFERENCE, HETERO)
HETERO_JOB = "brats_hetero"
CENTRAL, FEDAVG, FINETUNED, LOCAL = "central", "fedavg", "finetuned", "local"
METHODS = ALGORITHMS
"""The aggregation methods, each an arm of its name: the FedAvg arm's simulator run with the job's ``algorithm``."""
DONE_FILE = "arm.json"
EVALUATION_VERSION = 3
"""How the arms are evaluated, part of every arm's reuse key: an arm scored by other evaluation code is run again.
2: region counts (cases holding each region, Dice on them, cases scored 1 by the empty-region rule).
3: sensitivity and specificity of every region in every score; Ditto's personal models scored on their own sites."""
DATA_FILE = "study_data.json"
DEFAULT_CASES, DEFAULT_TEST_CASES, DEFAULT_STEPS, DEFAULT_ROUNDS = 24, 12, 2500, 50
"""The default study: synthetic cases per site of the reference benchmark (16 training, 4 validation), test cases per
site, optimiser steps per arm (over all sites), rounds of the federated arms on the reference benchmark."""
BENCHMARK_ROUNDS = {REFERENCE: DEFAULT_ROUNDS, HETERO: 25}
"""Default rounds of each benchmark: a site takes 25 steps a round of the default budget on either (2 sites x 50
rounds, 4 sites x 25 rounds)."""
BENCHMARK_OUT = {REFERENCE: "workspace/study", HETERO: "workspace/study-hetero"}
BENCHMARK_RESULTS = {REFERENCE: RESULTS, HETERO: f"{RESULTS}-hetero"}
"""Default ``--out`` and ``--name`` of each benchmark."""
DEFAULT_FINETUNE_STEPS, FINETUNE_LEARNING_RATE = 250, 5e-4
"""Steps with which a site fine-tunes FedAvg's final global model on its own training cases (a tenth of the study's
budget), and their learning rate, decaying along the recipe's cosine: a quarter of the recipe's starting rate, as
the model is trained already."""


@dataclasses.dataclass(frozen=True)
class Benchmark:
    """The synthetic sites a study trains on (a site without its own number of cases gets ``--cases``) and the job
    its federated arms run."""

    name: str
    job: str
    specs: Tuple[SiteSpec, ...]

    @property
    def sites(self) -> List[str]:
        return [spec.name for spec in self.specs]


@functools.cache
def benchmark(name: str = REFERENCE) -> Benchmark:
    """``reference``: site-1 (HGG) and site-2 (LGG) of the demo job; ``hetero``: the ``synthetic_sites`` of the
    ``brats_hetero`` job, each with its own cases, grades and scanner profile."""
    if name == REFERENCE:
        return Benchmark(REFERENCE, DEMO_JOB, tuple(parse_sites(REFERENCE_SITES)))
    if name == HETERO:
        return Benchmark(HETERO, HETERO_JOB, tuple(parse_sites(job_definition(HETERO_JOB).synthetic_sites)))
    raise ValueError(f"benchmark must be one of {BENCHMARKS}, got {name!r}")


def arm_names(sites: Sequence[str]) -> Tuple[str, ...]:
    """Every arm of a study of ``sites``, in the default order."""
    return (CENTRAL,) + METHODS + tuple(f"{FINETUNED}-{s}" for s in sites) + tuple(f"{LOCAL}-{s}" for s in sites)


def recipe() -> TrainSettings:
    """The study's recipe: the CPU recipe on 32^3 crops (docs/training.md)."""
    return TrainSettings.from_dict(STUDY_TRAINING)


def data_split(cases: int, test_cases: int = 0) -> Tuple[int, int, int]:
    """Training, validation and test cases per site: ``cases`` split about 70/15/15, its test share raised to
    ``test_cases`` (more held-out cases cost no training, and steady the comparison)."""
    train, val, test = split_sizes(cases)
    return train, val, max(test, test_cases)


def site_splits(bench: Benchmark, cases: int, test_cases: int = 0) -> Dict[str, Tuple[int, int, int]]:
    """Each site's :func:`data_split` of its own number of cases (``cases`` where it has none)."""
    return {spec.name: data_split(spec.cases or cases, test_cases) for spec in bench.specs}


def datalist_path(data_root: str, site: str) -> str:
    return os.path.join(data_root, "datalists", f"{site}.json")


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


def test_loaders(data_root: str, settings: TrainSettings, sites: Sequence[str]) -> Dict[str, object]:
    return {s: site_loader(datalist_path(data_root, s), data_root, "testing", settings, train=False) for s in sites}


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


def eta(elapsed: float, k: int, arms: List[str]) -> str:
    """``; about N min left``, from the arms done so far (a fine-tuning arm counted as a tenth of a training arm)."""
    weight = [0.1 if arm.startswith(FINETUNED) else 1.0 for arm in arms]
    done = sum(weight[: k - 1])
    return f"; about {elapsed / done * sum(weight[k - 1 :]):.0f} min left" if done and elapsed > 0 else ""


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


def data_marker(bench: Benchmark, splits: Dict[str, Tuple[int, int, int]], seed: int) -> dict:
    """What ``study_data.json`` records of a study's data (the reference benchmark: its one split and the seed)."""
    if bench.name == REFERENCE:
        return {"split": list(next(iter(splits.values()))), "seed": seed}
    sites = [str(s) for s in bench.specs]
    return {"benchmark": bench.name, "sites": sites, "splits": {s: list(v) for s, v in splits.items()}, "seed": seed}


def data_words(marker: dict) -> str:
    if "split" in marker:
        return f"split {marker['split']} and seed {marker['seed']}"
    return f"the sites {' '.join(marker['sites'])} split {marker['splits']} and seed {marker['seed']}"


def write_sites_apart(data_root: str, bench: Benchmark, splits: Dict[str, Tuple[int, int, int]], seed: int) -> None:
    """Every site of ``bench`` with its own split (the generator takes one split for the sites it writes at once),
    then the union's datalist and one record of them all."""
    records = []
    for spec in bench.specs:
        split = splits[spec.name]
        print(
            f"[study] writing {sum(split)} synthetic cases of {spec.name} ({spec.grade}, scanner {spec.profile}; "
            f"{'/'.join(map(str, split))}) to {data_root}",
            flush=True,
        )
        write_sites(data_root, [dataclasses.replace(spec, cases=0)], sum(split), "reduced", seed, split=split)
        records.append(read_record(data_root))
    datalists = []
    for site in bench.sites:
        with open(datalist_path(data_root, site)) as f:
            datalists.append(json.load(f))
    write_json(datalist_path(data_root, CENTRAL_SITE), merge_datalists(datalists))
    record = {**records[0], "sites": [s for r in records for s in r["sites"]]}
    record.update({part: {k: v for r in records for k, v in r[part].items()} for part in ("cases", "splits")})
    write_json(os.path.join(data_root, RECORD), record)


def study_data(out: str, cases: int, seed: int, test_cases: int = 0, bench: Optional[Benchmark] = None) -> str:
    """The study's synthetic sites under ``out/data``, written unless they are there; returns the data root.
    Data written for another size, seed or benchmark is an error: the arms would not be comparable."""
    bench = bench or benchmark()
    data_root = os.path.join(out, "data")
    splits = site_splits(bench, cases, test_cases)
    wanted = data_marker(bench, splits, seed)
    marker = os.path.join(data_root, DATA_FILE)
    if os.path.isfile(datalist_path(data_root, CENTRAL_SITE)):
        found = None
        if os.path.isfile(marker):
            with open(marker) as f:
                found = json.load(f)
        if found not in (None, wanted):
            if "split" in found and "split" in wanted:
                raise SystemExit(
                    f"{data_root} holds synthetic data of split {found['split']} and seed {found['seed']}, not "
                    f"{wanted['split']} and {seed}; choose another --out"
                )
            words = f"{data_words(found)}, not {data_words(wanted)}"
            raise SystemExit(f"{data_root} holds synthetic data of {words}; choose another --out")
        return data_root
    if bench.name == REFERENCE:
        split = data_split(cases, test_cases)
        sizes = "/".join(map(str, split))
        print(f"[study] writing {sum(split)} synthetic cases per site ({sizes}) to {data_root}", flush=True)
        write_sites(data_root, bench.sites, sum(split), "reduced", seed, split=split)
    else:
        write_sites_apart(data_root, bench, splits, seed)
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


def test_presence(data_root: str, settings: TrainSettings, sites: Sequence[str]) -> Dict[str, Dict[str, List[float]]]:
    """For every site's test cases, in their order, whether each region is in the reference as the arms were scored
    (the labels preprocessed with ``settings``): ``{site: {region: [1.0 or 0.0 per case]}}``."""
    presence = {}
    for site, loader in test_loaders(data_root, settings, sites).items():
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

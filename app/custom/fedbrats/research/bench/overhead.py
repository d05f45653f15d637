"""Benchmarks: FL overhead against a bare loop, training and data throughput, evaluation time.

Writes a JSON file and a Markdown summary; nothing here is a test.
"""

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List

from monai.data import DataLoader, Dataset

from fedbrats.federation.build_job import build_job
from fedbrats.federation.catalog import job_definition
from fedbrats.federation.definition import JobDefinition
from fedbrats.prepare.synthetic import write_sites
from fedbrats.research.bench.flare_logs import log_times, task_seconds
from fedbrats.research.doc_sections import keep_sections, machine
from fedbrats.runners.simulate import run_simulator
from fedbrats.runtime.constants import SITE_GRADES
from fedbrats.runtime.data.datalist import resolve_datalist
from fedbrats.runtime.data.loaders import make_dataset, site_loader
from fedbrats.runtime.data.transforms import eval_transforms, train_transforms
from fedbrats.runtime.engine import SegmentationEngine
from fedbrats.runtime.fl.site_data import write_site_settings
from fedbrats.runtime.settings import TrainSettings

SITES = list(SITE_GRADES)
PRODUCT_REQUEST_INTERVAL = JobDefinition("any").task_request_interval
"""The task request interval every job of the product runs with."""


def ensure_data(root: str, cases: int, size: str, sites: List[str] = SITES) -> str:
    if not os.path.isfile(os.path.join(root, "datalists", f"{sites[-1]}.json")):
        write_sites(root, sites, cases, size)
    return root


def bare_fedavg(root: str, settings: TrainSettings, rounds: int) -> float:
    """Seconds for the job's work with no FLARE, in one process.

    Per round and site: validate the global model, train, validate the local model; then FedAvg
    weighted by steps. The two sites run in two threads with one torch thread each, as the
    simulator's two client processes do.
    """
    start = time.time()
    engines, loaders = {}, {}
    for site in SITES:
        datalist = os.path.join(root, "datalists", f"{site}.json")
        engines[site] = SegmentationEngine(settings)
        loaders[site] = {
            "training": site_loader(datalist, root, "training", settings, train=True),
            "validation": site_loader(datalist, root, "validation", settings, train=False),
        }

    def site_round(site: str, weights: dict):
        engine = engines[site]
        engine.set_weights(weights)
        engine.validate(loaders[site]["validation"])
        steps = engine.train_round(loaders[site]["training"])["steps"]
        engine.validate(loaders[site]["validation"])
        return engine.get_weights(), steps

    weights = engines[SITES[0]].get_weights()
    with ThreadPoolExecutor(max_workers=len(SITES)) as pool:
        for _ in range(rounds):
            updates = list(pool.map(site_round, SITES, [weights] * len(SITES)))
            total = sum(n for _, n in updates)
            weights = {k: sum(w[k].float() * n for w, n in updates) / total for k in weights}
    return time.time() - start


def simulated_fedavg(root: str, work: str, job: str, overrides: dict, rounds: int) -> Dict[str, float]:
    """Wall time and phases of a simulator run, from the server's and sites' logs.

    FLARE's own cost per round is the round's duration minus the longest train task of a site
    (task dispatch, polling, weight transfer, aggregation, persisting the global model).
    """
    job_dir = build_job(job, os.path.join(work, "jobs"), overrides)
    sites = {s: {"data_root": root, "datalist": os.path.join(root, "datalists", f"{s}.json")} for s in SITES}
    settings = write_site_settings(os.path.join(work, "sites.json"), sites)
    workspace = os.path.join(work, "sim")
    start = time.time()
    wall = run_simulator(job_dir, workspace, SITES, len(SITES), settings, quiet=True)
    server_log = os.path.join(workspace, "server", "log.txt")
    starts, ends = log_times(server_log, r"Round \d+ started"), log_times(server_log, r"Round \d+ finished")
    tasks = {s: task_seconds(os.path.join(workspace, s, "log.txt")) for s in SITES}
    durations = [e - b for b, e in zip(starts, ends)]
    flare = [d - max(t[r] for t in tasks.values()) for r, d in enumerate(durations)]
    return {
        "wall_s": wall,
        "startup_s": starts[0] - start,
        "rounds_s": ends[-1] - starts[0],
        "after_rounds_s": start + wall - ends[-1],
        "flare_per_round_s": sum(flare[1:]) / max(len(flare) - 1, 1),
    }


def fl_overhead(
    root: str, work: str, job: str, rounds: int, steps_list: List[int], intervals: List[float], repeats: int = 1
) -> List[dict]:
    """Every (local steps, task request interval) measured ``repeats`` times: a bare loop, then the simulator at each
    interval, each repeat a row of its own."""
    rows = []
    for repeat in range(1, repeats + 1):
        for steps in steps_list:
            rows += overhead_rows(root, work, job, rounds, steps, intervals, repeat)
    return rows


def overhead_rows(
    root: str, work: str, job: str, rounds: int, steps: int, intervals: List[float], repeat: int
) -> List[dict]:
    overrides = {"num_rounds": rounds, "training": {"local_steps": steps}}
    settings = job_definition(job, overrides).settings()
    bare = bare_fedavg(root, settings, rounds)
    rows = []
    for interval in intervals:
        sim = simulated_fedavg(
            root,
            os.path.join(work, f"steps{steps}_interval{interval}_run{repeat}"),
            job,
            {**overrides, "task_request_interval": interval},
            rounds,
        )
        row = {
            "run": repeat,
            "rounds": rounds,
            "local_steps": steps,
            "task_request_interval_s": interval,
            "bare_s": round(bare, 1),
            "simulator_rounds_s": round(sim["rounds_s"], 1),
            "ratio_rounds": round(sim["rounds_s"] / bare, 3),
            "per_round_difference_s": round((sim["rounds_s"] - bare) / rounds, 2),
            "flare_per_round_s": round(sim["flare_per_round_s"], 2),
            "startup_s": round(sim["startup_s"], 1),
            "after_rounds_s": round(sim["after_rounds_s"], 1),
            "simulator_wall_s": round(sim["wall_s"], 1),
            "ratio_wall": round(sim["wall_s"] / bare, 3),
        }
        print(f"[bench] FL overhead: {json.dumps(row)}", flush=True)
        rows.append(row)
    return rows


def data_pipeline(root: str, settings: TrainSettings, epochs: int = 2) -> dict:
    entries = resolve_datalist(os.path.join(root, "datalists", f"{SITES[0]}.json"), "training", root)
    uncached = Dataset(entries, train_transforms(settings))
    start = time.time()
    for _ in range(epochs):
        for item in DataLoader(uncached, batch_size=1):  # noqa: B007 (the last item gives the shape)
            pass
    uncached_rate = epochs * len(entries) / (time.time() - start)
    start = time.time()
    cached = make_dataset(entries, settings.replace(cache_rate=1.0), train=True)
    cache_s = time.time() - start
    start = time.time()
    for _ in range(epochs):
        for item in DataLoader(cached, batch_size=1):  # noqa: B007
            pass
    cached_rate = epochs * len(entries) / (time.time() - start)
    return {
        "cases": len(entries),
        "shape": list(item["image"].shape[2:]),
        "uncached_cases_per_s": round(uncached_rate, 2),
        "cache_fill_s": round(cache_s, 1),
        "cached_cases_per_s": round(cached_rate, 2),
        "speedup": round(cached_rate / uncached_rate, 1),
    }


def evaluation(root: str, settings: TrainSettings, cases: int = 2) -> dict:
    entries = resolve_datalist(os.path.join(root, "datalists", f"{SITES[0]}.json"), "training", root)[:cases]
    engine = SegmentationEngine(settings)
    loader = DataLoader(Dataset(entries, eval_transforms(settings)), batch_size=1)
    batches = list(loader)
    start = time.time()
    engine.validate(batches)
    return {
        "crop": list(settings.crop),
        "init_filters": settings.init_filters,
        "cases": len(batches),
        "shape": list(batches[0]["image"].shape[2:]),
        "s_per_case": round((time.time() - start) / len(batches), 1),
        "device": str(engine.device),
    }


def step_rows(crops: List[str], filters: List[int], steps: int, malloc_tuning: bool = True) -> List[dict]:
    out = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"fedbrats_steps_{os.getpid()}.json")
    cmd = [
        sys.executable,
        "-m",
        "fedbrats.cli",
        "bench",
        "step",
        "--crops",
        *crops,
        "--init-filters",
        *map(str, filters),
        "--steps",
        str(steps),
        "--out",
        out,
    ] + ([] if malloc_tuning else ["--no-malloc-tuning"])
    subprocess.run(cmd, check=True)
    return json.load(open(out))["results"]


def to_markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        "# Benchmarks",
        "",
        f"Command: `{result['command']}`  ",
        f"Machine: {m['platform']}, {m['cpus']} CPUs, torch {m['torch']}, GPU: {m['cuda'] or 'none'}  ",
        f"Date: {result['date']}",
        "",
        "## FL overhead: FLARE simulator (2 sites, 2 threads) against the same work in a bare loop",
        "",
        "Both do, per round and site: validate the global model, train the local steps, validate the local",
        "model. The bare loop runs the two sites in two threads of one process, the simulator in two client",
        "processes; each site uses one torch thread in both. Round phase: from `Round 0 started` to the last",
        "`Round N finished` in the server log. After-rounds time includes the final-model scoring and the",
        "cross-site evaluation of 4 models on both sites.",
        "",
        "FLARE per round: a round's duration minus the longest train task of a site in it (rounds after",
        "the first, whose tasks also fill the data cache): dispatch, polling, weight transfer, aggregation",
        "and persisting the model.",
        "",
        "| run | task_request_interval (s) | rounds | local steps | bare (s) | simulator rounds (s) | ratio | "
        "difference/round (s) | FLARE per round (s) | start-up (s) | after rounds (s) | simulator wall (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["fl_overhead"]:
        lines.append(
            f"| {r.get('run', 1)} | {r['task_request_interval_s']} | {r['rounds']} | {r.get('local_steps', '-')} | "
            f"{r['bare_s']} | "
            f"{r['simulator_rounds_s']} | {r['ratio_rounds']} | {r['per_round_difference_s']} | "
            f"{r['flare_per_round_s']} | {r['startup_s']} | "
            f"{r['after_rounds_s']} | {r['simulator_wall_s']} |"
        )
    lines += [
        "",
        "## Training step (random data, batch 1, Dice + 0.1 x VAE loss, Adam)",
        "",
        "| device | crop | init_filters | malloc tuning | params (M) | s/step | voxels/s | peak RSS (GB) | "
        "peak GPU (GB) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["steps"]:
        lines.append(
            f"| {r['device']} (AMP {r['amp']}, {r['threads']} threads) | {'x'.join(map(str, r['crop']))} | "
            f"{r['init_filters']} | {'on' if r.get('malloc_tuning', True) else 'off'} | {r['params_M']} | "
            f"{r['s_per_step']} | {r['voxels_per_s']:,} | "
            f"{r['peak_rss_GB']} | {r.get('peak_gpu_GB', '-')} |"
        )
    d = result["data_pipeline"]
    lines += [
        "",
        "## Data pipeline (full-size 240x240x155 synthetic cases, training transforms)",
        "",
        f"{d['cases']} cases: uncached {d['uncached_cases_per_s']} cases/s; "
        f"filling the cache {d['cache_fill_s']} s; "
        f"cached epochs {d['cached_cases_per_s']} cases/s ({d['speedup']}x).",
        "",
    ]
    e = result["evaluation"]
    lines += [
        "## Evaluation (sliding window, overlap 0.5, full-size case)",
        "",
        f"{e['s_per_case']} s per case of {'x'.join(map(str, e['shape']))} voxels, "
        f"window {'x'.join(map(str, e['crop']))}, "
        f"init_filters {e['init_filters']}, {e['device']}.",
        "",
    ]
    return "\n".join(lines + targets(result))


def spread(values: List[float]) -> str:
    """``median m (range a to b, n runs)`` of the values of every qualifying run."""
    return f"median {statistics.median(values):g} (range {min(values):g} to {max(values):g}, {len(values)} runs)"


def judged(values: List[float], limit: float) -> str:
    """``met`` only when every qualifying run is within ``limit``; ``missed`` names how many were not."""
    if not values:
        return "not measured: no qualifying run"
    over = sum(v > limit for v in values)
    return "met" if not over else f"missed: {over} of {len(values)} runs above {limit:g}"


def targets(result: dict) -> List[str]:
    """The product's performance targets, each judged on every run that meets its condition, not on the best one."""
    long_rounds = [r for r in result["fl_overhead"] if r["bare_s"] / r["rounds"] >= 30]
    product = [r for r in result["fl_overhead"] if r["task_request_interval_s"] == PRODUCT_REQUEST_INTERVAL]
    gpu = [r for r in result["steps"] if "peak_gpu_GB" in r and r["crop"] == [224, 224, 144]]
    lines = ["## Targets", "", "| target | qualifying runs | measured | verdict |", "|---|---|---|---|"]
    ratios = [r["ratio_rounds"] for r in long_rounds]
    lines.append(
        "| FL overhead ratio <= 1.10 with >= 30 s of local work per round | every run with at least 30 s of bare "
        f"work a round | {spread(ratios) if ratios else 'no such run'} | {judged(ratios, 1.10)} |"
    )
    flare = [r["flare_per_round_s"] for r in product]
    lines.append(
        f"| FLARE cost per round <= 1 s | every run at the product's task_request_interval "
        f"({PRODUCT_REQUEST_INTERVAL:g} s) | {spread(flare) if flare else 'no such run'} | {judged(flare, 1.0)} |"
    )
    speedup = result["data_pipeline"]["speedup"]
    lines.append(
        f"| cached epochs >= 3x faster than uncached | one run | {speedup}x | {'met' if speedup >= 3 else 'missed'} |"
    )
    lines.append(
        f"| peak GPU memory at 224x224x144 with AMP <= 16 GB | every GPU run | "
        f"{gpu[0]['peak_gpu_GB'] if gpu else 'no GPU on this machine'} | "
        f"{judged([r['peak_gpu_GB'] for r in gpu], 16.0) if gpu else 'not measured'} |"
    )
    return lines + [""]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--work", default="workspace/bench")
    parser.add_argument("--job", default="brats_fedavg_demo")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--local-steps", type=int, nargs="+", default=[75, 200], help="local steps per round and site, one run each"
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs of every FL overhead setting (targets: every run)")
    parser.add_argument(
        "--request-intervals",
        type=float,
        nargs="+",
        default=[2.0, 0.2],
        help="server task_request_interval values (2.0 is FLARE's default, 0.2 the product's)",
    )
    parser.add_argument("--cases", type=int, default=8, help="reduced synthetic cases per site for the FL runs")
    parser.add_argument("--crops", nargs="+", default=["64,64,64", "224,224,144"])
    parser.add_argument("--step-count", type=int, default=2, help="timed training steps per crop (after one warm-up)")
    parser.add_argument("--init-filters", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--full-cases", type=int, default=4, help="full-size cases for the data and evaluation figures")
    parser.add_argument("--eval-crop", type=int, nargs=3, default=[128, 128, 128])
    parser.add_argument("--eval-filters", type=int, default=16)
    parser.add_argument("--out", default="docs/benchmarks_overhead.json", help="the figures as JSON")
    parser.add_argument("--markdown", default="docs/benchmarks.md")


def run(args: argparse.Namespace) -> None:
    reduced = ensure_data(os.path.join(args.work, "data_reduced"), args.cases, "reduced")
    full = ensure_data(os.path.join(args.work, "data_full"), args.full_cases, "full", SITES[:1])
    result = {
        "command": " ".join(["fedbrats", "bench", "overhead"] + sys.argv[3:]),
        "machine": machine(),
        "date": dt.date.today().isoformat(),
    }
    result["fl_overhead"] = fl_overhead(
        reduced, args.work, args.job, args.rounds, args.local_steps, args.request_intervals, args.repeats
    )
    result["steps"] = step_rows(args.crops, args.init_filters, args.step_count)
    result["steps"] += step_rows(args.crops[:1], args.init_filters[:1], args.step_count, malloc_tuning=False)
    full_settings = TrainSettings.from_dict({"crop": [128, 128, 128], "init_filters": 8})
    result["data_pipeline"] = data_pipeline(full, full_settings)
    print(f"[bench] data pipeline: {json.dumps(result['data_pipeline'])}", flush=True)
    eval_settings = TrainSettings.from_dict({"crop": args.eval_crop, "init_filters": args.eval_filters})
    result["evaluation"] = evaluation(full, eval_settings)
    print(f"[bench] evaluation: {json.dumps(result['evaluation'])}", flush=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    old = open(args.markdown).read() if os.path.isfile(args.markdown) else ""
    markdown = keep_sections(to_markdown(result), old)
    with open(args.markdown, "w") as f:
        f.write(markdown)
    print(f"[bench] written to {os.path.abspath(args.out)} and {os.path.abspath(args.markdown)}")

"""``fedbrats bench gpu``: the product's GPU path on one machine, in one command that fits in a few minutes.

It measures, each part in processes of its own and each part's failure recorded rather than stopping the rest:

- the training step with AMP at the reference crop, for each ``init_filters`` (``fedbrats bench step``): seconds per
  step and peak GPU memory;
- the loader at the reference crop, uncached with several background workers and from the cache
  (``fedbrats bench cache``'s loader measure): training crops per second;
- a 2-round FedAvg job of two sites with full-size synthetic cases in FLARE's simulator, both sites on the GPU: its
  time per round, the best model's round and every cross-site result;
- ``fedbrats infer`` on CUDA with that job's final global model: seconds per full-size case;
- data-parallel training of one site: the same job again with site-1 in one process per GPU (PyTorch DDP, the
  site's ``processes`` setting), its crops per second beside the one-process run's; not run where the machine has
  fewer than 2 GPUs, and said so (``--ddp-processes N`` runs it anyway, on the CPU with gloo).

It writes ``<docs>/benchmarks-gpu.md`` and ``benchmarks-gpu.json``. ``scripts/gpu_check.sh`` runs it with the
reference settings; on a CPU the same parts run with tiny settings (the tests do).
"""

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
import time
from typing import Callable, Dict, List

import torch

from fedbrats.evaluation.learning_curves import read_scalars, site_event_folders
from fedbrats.evaluation.report import write_report
from fedbrats.federation.build_job import build_job
from fedbrats.prepare.synthetic import write_sites
from fedbrats.research.bench.flare_logs import log_times
from fedbrats.research.doc_sections import machine, section_head
from fedbrats.runners.simulate import run_simulator
from fedbrats.runtime.constants import MEAN_DICE
from fedbrats.runtime.fl.executor import TRAIN_TAG
from fedbrats.runtime.fl.site_data import PROCESSES, write_site_settings

NAME = "benchmarks-gpu"
SITES = ["site-1:HGG", "site-2:LGG"]
REFERENCE_CROP = [224, 224, 144]
DDP_SITE = "site-1"


def fedbrats_command(*args: str) -> List[str]:
    return [sys.executable, "-m", "fedbrats.cli", *args]


def last_json(text: str) -> dict:
    return json.loads([line for line in text.strip().splitlines() if line.startswith("{")][-1])


def write(result: dict, docs: str) -> None:
    """The page and its JSON as far as the check got: a check stopped half-way still leaves its figures."""
    os.makedirs(docs, exist_ok=True)
    with open(os.path.join(docs, f"{NAME}.json"), "w") as f:
        json.dump(result, f, indent=2)
    with open(os.path.join(docs, f"{NAME}.md"), "w") as f:
        f.write(to_markdown(result))


def part(result: dict, name: str, measure: Callable[[], object]) -> None:
    """Run one part; its figures, or its error, go into ``result[name]``, with its seconds."""
    start = time.time()
    print(f"[bench gpu] {name} ...", flush=True)
    try:
        result[name] = {"figures": measure()}
    except Exception as e:  # a part that fails is recorded; the other parts still run
        result[name] = {"error": f"{type(e).__name__}: {str(e).strip()[-600:]}"}
    result[name]["seconds"] = round(time.time() - start, 1)
    print(f"[bench gpu] {name}: {json.dumps(result[name])[:400]}", flush=True)


def training_steps(crop: List[int], filters: List[int], steps: int, device: str) -> List[dict]:
    rows = []
    for f in filters:
        single = ["bench", "step", "--single", "--crops", ",".join(map(str, crop)), "--init-filters", str(f)]
        cmd = fedbrats_command(*single, "--steps", str(steps), "--warmup", "2", "--device", device)
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rows.append(last_json(done.stdout))
    return rows


def loader(data: str, cases: int, workers: List[int], crops: int, crop: List[int]) -> List[dict]:
    rows = []
    for rate, n in [(0.0, w) for w in workers] + [(1.0, 0)]:
        out = os.path.join(os.path.dirname(os.path.abspath(data)), f"loader_{rate:g}_{n}.json")
        measure = ["loader", str(rate), str(n), str(crops), ",".join(map(str, crop))]
        cmd = fedbrats_command("bench", "cache", "--data", data, "--cases", str(cases), "--measure", *measure)
        subprocess.run(cmd + ["--measure-into", out], check=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
        with open(out) as f:
            rows.append(json.load(f))
    return rows


def site_crops_per_second(workspace: str) -> Dict[str, float]:
    """Each site's training crops per second (over all its processes), the mean of its rounds after the first."""
    rates = {}
    for site, folder in site_event_folders(workspace).items():
        per_round = read_scalars(folder).get(f"{TRAIN_TAG}/crops_per_second", {})
        later = [v for step, v in sorted(per_round.items())][1:] or list(per_round.values())
        rates[site] = round(sum(later) / len(later), 3) if later else None
    return rates


def federation(work: str, data: str, training: dict, rounds: int, gpu: str, processes: int = 1) -> dict:
    """The 2-round job in the simulator; with ``processes`` above 1, site-1 trains in that many DDP processes (every
    GPU visible to it: rank k takes GPU k)."""
    names = [s.split(":")[0] for s in SITES]
    job = build_job("brats_fedavg", os.path.join(work, "jobs"), {"num_rounds": rounds, "training": training})
    site_data = {s: {"data_root": data, "datalist": os.path.join(data, "datalists", f"{s}.json")} for s in names}
    if processes > 1:
        site_data[DDP_SITE][PROCESSES] = processes
        gpu = ""
    settings = write_site_settings(os.path.join(work, "sites.json"), site_data)
    workspace = os.path.join(work, "sim")
    wall = run_simulator(job, workspace, names, len(names), settings, gpu=gpu or None, quiet=True)
    server_log = os.path.join(workspace, "server", "log.txt")
    starts, ends = log_times(server_log, r"Round \d+ started"), log_times(server_log, r"Round \d+ finished")
    report = write_report(workspace, os.path.join(work, "report"))
    device = re.search(r"device (\S+), AMP (\w+)", open(os.path.join(workspace, "site-1", "log.txt")).read())
    return {
        "job": job,
        "training": training,
        "rounds": rounds,
        "site_device": device.group(1) if device else None,
        "site_amp": device.group(2) if device else None,
        "wall_s": round(wall, 1),
        "round_s": [round(e - b, 1) for b, e in zip(starts, ends)],
        "processes": {s: processes if s == DDP_SITE else 1 for s in names},
        "crops_per_s": site_crops_per_second(workspace),
        "models": {
            row["short"]: {s: r[MEAN_DICE] if r else None for s, r in row["sites"].items()} for row in report["models"]
        },
        "warnings": report["warnings"],
        "final_model": os.path.join(workspace, "server", "simulate_job", "app_server", "FL_global_model.pt"),
    }


def inference(model: str, job: str, case_dir: str, device: str) -> dict:
    out = os.path.join(os.path.dirname(os.path.dirname(model)), "infer")
    cmd = fedbrats_command("infer", model, "--job", job, "--case-dir", case_dir, "--out", out, "--device", device)
    start = time.time()
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    per_case = re.search(r"1/1 \S+: ([\d.]+) s", done.stdout)
    return {
        "device": device,
        "command_s": round(time.time() - start, 1),
        "case_s": float(per_case.group(1)) if per_case else None,
        "header": done.stdout.splitlines()[0],
    }


def to_markdown(result: dict) -> str:
    lines = section_head("# Benchmarks on a GPU", result) + [
        f"{result['gpus']} GPU(s) visible; every part took {result['total_s'] or '(stopped before the end)'} s.",
        "",
        f"## Training step on {result['device']}",
        "",
    ]
    steps = result["steps"]
    if "figures" in steps:
        lines += [
            "Random data, batch 1, Dice + 0.1 x VAE loss, Adam; seconds per step after 2 warm-up steps.",
            "",
            "| crop | init_filters | params (M) | AMP | s/step | voxels/s | peak GPU memory (GB) |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in steps["figures"]:
            lines.append(
                f"| {'x'.join(map(str, r['crop']))} | {r['init_filters']} | {r['params_M']} | {r['amp']} | "
                f"{r['s_per_step']} | {r['voxels_per_s']:,} | {r.get('peak_gpu_GB', '-')} |"
            )
    else:
        lines.append(f"Not measured: {steps['error']}")
    lines += ["", "## Loader at the training crop", ""]
    load = result["loader"]
    if "figures" in load:
        lines += [
            f"Training crops per second from {result['size']} synthetic cases, one epoch, the first crop not counted; "
            "each measure in a fresh process set up as a site's (one torch thread).",
            "",
            "| crop | cache_rate | loader workers | crops | crops/s | s/crop |",
            "|---|---|---|---|---|---|",
        ]
        for r in load["figures"]:
            lines.append(
                f"| {'x'.join(map(str, r['crop_shape'][2:]))} | {r['cache_rate']:g} | {r['num_workers']} | "
                f"{r['crops']} | {r['crops_per_s']} | {r['s_per_crop']} |"
            )
    else:
        lines.append(f"Not measured: {load['error']}")
    fed = result["federation"]
    rounds = fed.get("figures", {}).get("rounds", "")
    lines += ["", f"## A {rounds}-round FedAvg job in FLARE's simulator, both sites on {result['device']}", ""]
    if "figures" in fed:
        f = fed["figures"]
        t = f["training"]
        lines += [
            f"`brats_fedavg`, {f['rounds']} rounds, crop {'x'.join(map(str, t['crop']))}, init_filters "
            f"{t['init_filters']}, {t['pixdim']:g} mm voxels, {t['local_steps']} local steps a round, on "
            f"{result['size']} synthetic sites "
            f"(site-1 HGG-like, site-2 LGG-like); the sites trained on `{f['site_device']}` with AMP {f['site_amp']}. "
            f"Simulator wall time {f['wall_s']} s; rounds {', '.join(map(str, f['round_s']))} s.",
            "",
            "| model | " + " | ".join(next(iter(f["models"].values()))) + " |",
            "|---" * (1 + len(next(iter(f["models"].values())))) + "|",
        ]
        for model, sites in f["models"].items():
            lines.append(f"| {model} | " + " | ".join("-" if v is None else f"{v:.4f}" for v in sites.values()) + " |")
        lines += ["", "Mean Dice after a few short rounds: the run checks that the path works, not accuracy."]
        lines += [f"- warning: {w}" for w in f["warnings"]]
    else:
        lines.append(f"Not run: {fed['error']}")
    lines += ["", f"## `fedbrats infer` on {result['device']}", ""]
    infer = result["infer"]
    if "figures" in infer:
        i = infer["figures"]
        lines.append(
            f"The job's final global model on one {result['size']} case: {i['case_s']} s for the case, "
            f"{i['command_s']} s for the whole command (start-up, model, writing the segmentation). `{i['header']}`"
        )
    else:
        lines.append(f"Not run: {infer['error']}")
    lines += ["", "## Data-parallel training of one site", "", *ddp_lines(result), ""]
    return "\n".join(lines)


def ddp_lines(result: dict) -> List[str]:
    """The data-parallel run beside the one-process run: site-1's crops per second and the round times."""
    ddp, single = result["ddp"], result["federation"].get("figures", {})
    if "figures" not in ddp:
        return [f"Not run: {ddp['error']}"]
    d = ddp["figures"]
    n = d["processes"][DDP_SITE]
    alone, together = single.get("crops_per_s", {}).get(DDP_SITE), d["crops_per_s"].get(DDP_SITE)
    speedup = f"{together / alone:.2f}x" if alone and together else "not measured"
    return [
        f"The same job with {DDP_SITE} training in {n} processes (PyTorch DDP, the site's `processes` setting; "
        f"{'one GPU each' if result['gpus'] >= n else 'gloo on the CPU, sharing its cores'}), the other site in one.",
        "",
        f"| {DDP_SITE} processes | crops/s (rounds after the first) | rounds (s) |",
        "|---|---|---|",
        f"| 1 | {alone} | {', '.join(map(str, single.get('round_s', [])))} |",
        f"| {n} | {together} | {', '.join(map(str, d['round_s']))} |",
        "",
        f"Speed-up of {DDP_SITE}'s training: {speedup}.",
    ]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--work", default="workspace/bench-gpu", help="data, jobs and logs of the check")
    parser.add_argument("--docs", default="docs", help=f"folder for {NAME}.md and {NAME}.json")
    parser.add_argument("--device", default="cuda", help="cuda (or cpu, to try the command with tiny settings)")
    parser.add_argument("--crop", type=int, nargs=3, default=REFERENCE_CROP)
    parser.add_argument("--init-filters", type=int, nargs="+", default=[16, 32], help="training-step models")
    parser.add_argument("--steps", type=int, default=5, help="timed training steps per model")
    parser.add_argument("--cases", type=int, default=5, help="full-size synthetic cases per site")
    parser.add_argument("--size", choices=("full", "reduced"), default="full")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2, 4, 8], help="loader workers to measure")
    parser.add_argument("--crops", type=int, default=4, help="training crops per loader measure")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--local-steps", type=int, default=10, help="local steps a round in the simulator job")
    parser.add_argument("--job-filters", type=int, default=16, help="init_filters of the simulator job")
    parser.add_argument("--pixdim", type=float, default=1.0, help="voxel size (mm) the simulator job trains at")
    parser.add_argument(
        "--ddp-processes",
        type=int,
        help="processes of site-1 in the data-parallel run (default: one per GPU when there are 2 or more, else the "
        "part is not run; on a CPU the processes use gloo)",
    )


def run(args: argparse.Namespace) -> dict:
    start = time.time()
    gpus = torch.cuda.device_count() if args.device.startswith("cuda") else 0
    result: Dict[str, object] = {
        "command": " ".join(["fedbrats", "bench", "gpu"] + sys.argv[3:]),
        "machine": machine(),
        "date": dt.date.today().isoformat(),
        "gpus": gpus,
        "device": args.device,
        "size": "full-size" if args.size == "full" else "reduced-size (2 mm)",
    }
    data = os.path.join(args.work, "data")
    if not os.path.isfile(os.path.join(data, "datalists", "site-2.json")):
        write_sites(data, SITES, args.cases, args.size)
    result.update({name: {"error": "not reached"} for name in ("steps", "loader", "federation", "infer", "ddp")})
    result["total_s"] = None
    part(result, "steps", lambda: training_steps(args.crop, args.init_filters, args.steps, args.device))
    write(result, args.docs)
    loader_cases = min(args.crops, args.cases) + 1
    loader_data = os.path.join(args.work, "loader")
    if not os.path.isfile(os.path.join(loader_data, "datalists", "site-1.json")):
        write_sites(loader_data, ["site-1"], loader_cases, args.size)
    part(result, "loader", lambda: loader(loader_data, loader_cases, args.workers, loader_cases - 1, args.crop))
    write(result, args.docs)
    training = {
        "crop": args.crop,
        "init_filters": args.job_filters,
        "pixdim": args.pixdim,
        "local_steps": args.local_steps,
        "num_workers": 2,
        "cache_rate": 1.0,
        "num_threads": 1 if args.device == "cpu" else 0,
    }
    gpu = "0" if gpus else ""
    part(result, "federation", lambda: federation(args.work, data, training, args.rounds, gpu))
    write(result, args.docs)
    fed = result["federation"].get("figures")
    case_dir = os.path.dirname(json.load(open(os.path.join(data, "datalists", "site-1.json")))["testing"][0]["label"])
    if fed:
        part(
            result,
            "infer",
            lambda: inference(fed["final_model"], fed["job"], os.path.join(data, case_dir), args.device),
        )
    else:
        result["infer"] = {"error": "no model: the simulator job did not run"}
    processes = args.ddp_processes if args.ddp_processes is not None else (gpus if gpus >= 2 else 0)
    if processes >= 2:
        ddp_work = os.path.join(args.work, "ddp")
        part(result, "ddp", lambda: federation(ddp_work, data, training, args.rounds, gpu, processes))
    else:
        result["ddp"] = {"error": f"this machine has {gpus} GPU(s); data-parallel training of a site needs 2 or more"}
    result["total_s"] = round(time.time() - start, 1)
    write(result, args.docs)
    print(f"[bench gpu] done in {result['total_s']} s: {os.path.join(os.path.abspath(args.docs), NAME)}.md and .json")
    return result

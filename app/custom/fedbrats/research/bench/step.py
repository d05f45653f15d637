"""Training step time and peak memory of SegResNetVAE for given crops, each measured in a fresh process."""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import torch

from fedbrats.research.doc_sections import machine
from fedbrats.runtime.constants import MALLOC_TUNING_ENV
from fedbrats.runtime.engine import SegmentationEngine, select_device
from fedbrats.runtime.settings import TrainSettings


def measure(crop, init_filters: int, steps: int, warmup: int, device: str) -> dict:
    """Mean seconds per training step on random data, and peak memory, in this process."""
    settings = TrainSettings.from_dict({"crop": crop, "init_filters": init_filters})
    engine = SegmentationEngine(settings, select_device(device))
    x = torch.randn(1, 4, *settings.crop)
    y = (torch.rand(1, 3, *settings.crop) > 0.9).float()
    batch = [{"image": x, "label": y}]
    engine.train_epoch(batch * warmup)
    if engine.device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    engine.train_epoch(batch * steps)
    if engine.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / steps
    out = {
        "crop": list(settings.crop),
        "init_filters": init_filters,
        "device": str(engine.device),
        "amp": engine.use_amp,
        "threads": torch.get_num_threads(),
        "params_M": round(sum(p.numel() for p in engine.model.parameters()) / 1e6, 2),
        "s_per_step": round(seconds, 3),
        "voxels_per_s": round(x[0, 0].numel() / seconds),
        "peak_rss_GB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }
    if engine.device.type == "cuda":
        out["peak_gpu_GB"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        out["gpu"] = torch.cuda.get_device_name()
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--crops", nargs="+", default=["64,64,64", "224,224,144"], help="crops as X,Y,Z")
    parser.add_argument("--init-filters", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default="workspace/bench/step_time.json")
    parser.add_argument(
        "--no-malloc-tuning", action="store_true", help="measure with glibc's default allocator settings"
    )
    parser.add_argument("--single", action="store_true", help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> None:
    if args.single:
        crop = [int(c) for c in args.crops[0].split(",")]
        print(json.dumps(measure(crop, args.init_filters[0], args.steps, args.warmup, args.device)))
        return
    rows = []
    for crop in args.crops:
        for filters in args.init_filters:
            cmd = [
                sys.executable,
                "-m",
                "fedbrats.cli",
                "bench",
                "step",
                "--single",
                "--crops",
                crop,
                "--init-filters",
                str(filters),
                "--steps",
                str(args.steps),
                "--warmup",
                str(args.warmup),
                "--device",
                args.device,
            ]
            env = dict(os.environ, **{MALLOC_TUNING_ENV: "0" if args.no_malloc_tuning else "1"})
            done = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if done.returncode != 0:
                print(
                    f"[bench step] crop {crop} init_filters {filters} failed: {done.stderr.strip()[-300:]}", flush=True
                )
                continue
            rows.append(
                {**json.loads(done.stdout.strip().splitlines()[-1]), "malloc_tuning": not args.no_malloc_tuning}
            )
            print(f"[bench step] {json.dumps(rows[-1])}", flush=True)
    result = {"command": " ".join(["fedbrats"] + sys.argv[1:]), "machine": machine(), "results": rows}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(f"[bench step] written to {os.path.abspath(args.out)}")

"""``fedbrats bench cache``: what a site's cache of full-size cases costs in memory, and how fast its loader delivers
training crops, each measured in a fresh process.

Memory: every case of a full-size synthetic site cached as MONAI's CacheDataset keeps it (float32 volumes) and as a
site keeps it (compact: :mod:`fedbrats.runtime.data.compact`): the exact bytes of the cached tensors, and the process's
resident memory (RSS) before and after filling the cache. Loading: training crops per second with the cache off and
on, with and without background workers.
"""

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import time
from typing import Dict, List

from fedbrats.research.doc_sections import machine, section_head, write_section
from fedbrats.runtime.constants import SPLITS

SITE = "site-1"
REFERENCE_CROP = [224, 224, 144]
SECTION = "## Data cache and loading"
"""Heading of this benchmark's section of docs/benchmarks.md (from it to the next ``## `` heading or the end)."""
GIB, MIB = 2**30, 2**20


def ensure_data(root: str, cases: int) -> str:
    """A site of ``cases`` full-size synthetic cases under ``root`` (written once); its datalist."""
    datalist = os.path.join(root, "datalists", f"{SITE}.json")
    if not os.path.isfile(datalist):
        from fedbrats.prepare.synthetic import write_sites

        write_sites(root, [SITE], cases, "full")
    return datalist


def site_entries(root: str, cases: int) -> List[dict]:
    """The first ``cases`` cases of the site, every split together."""
    from fedbrats.runtime.data.datalist import resolve_datalist

    datalist = ensure_data(root, cases)
    entries = [e for split in SPLITS for e in resolve_datalist(datalist, split, root)]
    if len(entries) < cases:
        raise SystemExit(f"{datalist} lists {len(entries)} cases, fewer than {cases}: use another --data folder")
    return entries[:cases]


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


def measure_cache(root: str, cases: int, variant: str) -> dict:
    """Fill a cache of ``cases`` cases in this process: ``float32`` (before) or ``compact`` (now)."""
    import torch
    from monai.data import CacheDataset

    from fedbrats.runtime.data.cache import CachedCases, CachePlan
    from fedbrats.runtime.data.compact import CompactCased, tensor_bytes
    from fedbrats.runtime.data.transforms import eval_transforms
    from fedbrats.runtime.settings import TrainSettings

    torch.set_num_threads(1)
    settings = TrainSettings.from_dict({"crop": REFERENCE_CROP, "cache_rate": 1.0})
    entries = site_entries(root, cases)
    before = rss_bytes()
    start = time.perf_counter()
    if variant == "float32":
        dataset = CacheDataset(entries, eval_transforms(settings), cache_rate=1.0, num_workers=1, progress=False)
        items = dataset._cache
    else:
        plan = CachePlan.from_rate(1.0, len(entries))
        items = CachedCases(entries, eval_transforms(settings), plan, keep=CompactCased(), threads=1).cache
    seconds = time.perf_counter() - start
    after = rss_bytes()
    per_case = [tensor_bytes({k: item[k] for k in ("image", "label")}) for item in items]
    return {
        "variant": variant,
        "cases": len(items),
        "shape": list(items[0]["image"].shape),
        "image_dtype": str(items[0]["image"].dtype).replace("torch.", ""),
        "label_dtype": str(items[0]["label"].dtype).replace("torch.", ""),
        "case_MiB_mean": round(sum(per_case) / len(per_case) / MIB, 1),
        "case_MiB_max": round(max(per_case) / MIB, 1),
        "cache_GiB": round(sum(per_case) / GIB, 2),
        "rss_before_GiB": round(before / GIB, 2),
        "rss_after_GiB": round(after / GIB, 2),
        "rss_growth_GiB": round((after - before) / GIB, 2),
        "peak_rss_GiB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB, 2),
        "fill_s": round(seconds, 1),
    }


def measure_loader(root: str, cache_rate: float, workers: int, crops: int, crop=REFERENCE_CROP) -> dict:
    """Training crops at the reference size per second from a loader over ``crops + 1`` cases, one epoch: the first
    crop is not counted. The process is set up as a site's training process is (one thread, memory kept for reuse:
    :func:`fedbrats.runtime.engine.configure_cpu`), and its loader workers inherit that."""
    from fedbrats.runtime.data.loaders import make_dataset, make_loader
    from fedbrats.runtime.engine import configure_cpu
    from fedbrats.runtime.settings import TrainSettings

    configure_cpu(1)
    settings = TrainSettings.from_dict(
        {"crop": list(crop), "cache_rate": cache_rate, "num_workers": workers, "batch_size": 1}
    )
    start = time.perf_counter()
    cases = crops + 1
    loader = make_loader(make_dataset(site_entries(root, cases), settings, train=True), settings, train=True)
    prepared = time.perf_counter() - start
    times, tick = [], time.perf_counter()
    for batch in loader:  # noqa: B007 (the last batch gives the shape)
        times.append(time.perf_counter() - tick)
        tick = time.perf_counter()
    seconds = sum(times[1:])  # the first waits for the workers to start and fill their queue
    return {
        "cache_rate": cache_rate,
        "num_workers": workers,
        "cases": cases,
        "crops": crops,
        "crop_shape": list(batch["image"].shape),
        "dtype": str(batch["image"].dtype).replace("torch.", ""),
        "prepare_s": round(prepared, 1),
        "first_crop_s": round(times[0], 2),
        "crops_per_s": round(crops / seconds, 2),
        "s_per_crop": round(seconds / crops, 3),
    }


def run_child(args: argparse.Namespace, measure: List[str], name: str) -> dict:
    """Measure one thing in a fresh process (one OpenMP thread); its row of figures."""
    out = os.path.join(os.path.dirname(os.path.abspath(args.out)), f"{name}.json")
    cmd = [sys.executable, "-m", "fedbrats.cli", "bench", "cache", "--data", args.data, "--measure", *measure]
    subprocess.run(cmd + ["--measure-into", out], check=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    with open(out) as f:
        row = json.load(f)
    print(f"[bench cache] {name}: {json.dumps(row)}", flush=True)
    return row


def to_markdown(result: dict) -> str:
    """This benchmark's section of docs/benchmarks.md."""
    rows = {r["variant"]: r for r in result["cache"]}
    lines = section_head(SECTION, result) + [
        "Full-size (240x240x155, 1 mm) synthetic cases, preprocessed as a site does at 1 mm; each figure measured in a "
        "fresh process with one torch thread, the cache filled by one thread.",
        "",
        f"### Cache of {result['cases']} cases",
        "",
        "| cache | stored | MiB a case (mean, max) | cache (GiB) | RSS before -> after (GiB) | RSS growth (GiB) "
        "| peak RSS (GiB) | fill (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, label in (("float32", "before: CacheDataset, float32"), ("compact", "now: compact")):
        r = rows.get(name)
        if r:
            stored = f"image {r['image_dtype']} {'x'.join(map(str, r['shape']))}, label {r['label_dtype']}"
            lines.append(
                f"| {label} | {stored} | {r['case_MiB_mean']}, {r['case_MiB_max']} | {r['cache_GiB']} | "
                f"{r['rss_before_GiB']} -> {r['rss_after_GiB']} | {r['rss_growth_GiB']} | {r['peak_rss_GiB']} | "
                f"{r['fill_s']} |"
            )
    lines += [
        "",
        "### Training crops from the loader",
        "",
        f"Crops of {'x'.join(map(str, REFERENCE_CROP))} voxels, batch 1, float32; the first crop (worker start-up) "
        "is not counted. The process is set up as a site's training process is (one torch thread, freed memory kept "
        "for reuse), and the loader's workers inherit that.",
        "",
        "| cache | workers | cases | crops | crops/s | s a crop |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["loader"]:
        cache = "off" if r["cache_rate"] == 0 else "on (compact)"
        lines.append(
            f"| {cache} | {r['num_workers']} | {r['cases']} | {r['crops']} | {r['crops_per_s']} | {r['s_per_crop']} |"
        )
    lines += ["", "JSON written by the command:", "", "```json", json.dumps(result, indent=2), "```", ""]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", default="workspace/bench/data_cache", help="full-size synthetic site (written if absent)"
    )
    parser.add_argument("--cases", type=int, default=40, help="cases cached for the memory figures")
    parser.add_argument("--crops", type=int, default=8, help="timed crops per loader setting (from as many cases + 1)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="loader workers, one run each")
    parser.add_argument("--out", default="workspace/bench/cache.json")
    parser.add_argument("--markdown", default="docs/benchmarks.md", help="file whose cache section is (re)written")
    parser.add_argument("--measure", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--measure-into", help=argparse.SUPPRESS)


def measure_one(args: argparse.Namespace) -> None:
    kind, *values = args.measure
    if kind == "cache":
        row = measure_cache(args.data, int(values[1]), values[0])
    else:
        crop = [int(c) for c in values[3].split(",")] if len(values) > 3 else REFERENCE_CROP
        row = measure_loader(args.data, float(values[0]), int(values[1]), int(values[2]), crop)
    with open(args.measure_into, "w") as f:
        json.dump(row, f)


def run(args: argparse.Namespace) -> None:
    if args.measure:
        return measure_one(args)
    ensure_data(args.data, args.cases)
    result: Dict[str, object] = {
        "command": " ".join(["fedbrats", "bench", "cache"] + sys.argv[3:]),
        "machine": machine(),
        "date": dt.date.today().isoformat(),
        "cases": args.cases,
    }
    result["cache"] = [run_child(args, ["cache", v, str(args.cases)], f"cache_{v}") for v in ("float32", "compact")]
    loader_runs = [(0.0, w) for w in args.workers] + [(1.0, 0)]
    result["loader"] = [
        run_child(
            args,
            ["loader", str(rate), str(workers), str(args.crops)],
            f"loader_cache{rate:g}_workers{workers}",
        )
        for rate, workers in loader_runs
    ]
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    write_section(args.markdown, SECTION, to_markdown(result))
    print(f"[bench cache] written to {os.path.abspath(args.out)} and the cache section of {args.markdown}")

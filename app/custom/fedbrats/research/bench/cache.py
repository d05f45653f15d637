"""``fedbrats bench cache``: what a site's cache of full-size cases costs in memory, and how fast its loader delivers
training crops, each measured in a fresh process.

Memory: every case of a full-size synthetic site cached as MONAI's CacheDataset keeps it (float32 volumes) and as a
site keeps it (compact: :mod:`fedbrats.runtime.data.compact`): the exact bytes of the cached tensors, and the process's
resident memory (RSS) before and after filling the cache. Loading: where an uncached crop's time goes, stage by stage,
and training crops per second with the cache off (the path before, which preprocesses the whole volume first, and the
path now, which converts, normalises and augments only the crop) and on, with 0, 1 and 2 background workers, side by
side in one run, with the speed-up and what a site's cores would feed.
"""

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import time
from typing import Dict, List, Sequence

from fedbrats.research.doc_sections import machine, section_head, write_section
from fedbrats.runtime.constants import SPLITS

SITE = "site-1"
REFERENCE_CROP = [224, 224, 144]
FULL_SHAPE = [240, 240, 155]
"""Spatial shape of a full-size case: the loader's targets are measured on such cases at the reference crop."""
PATHS = ("before", "now")
"""Uncached training paths: the whole volume preprocessed, then cropped (before), or only the crop (now)."""
SPEED_UP_TARGET, SITE_CORES, CROPS_TARGET = 2.0, 8, 4.0
"""Targets: the uncached path this many times faster; a site of this many cores feeding this many crops a second."""
STAGES = ("read and decode", "labels to regions", "reorient", "resample", "normalise", "pad", "crop", "augment")
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


def stage_of(transform: object) -> str:
    """The stage of :data:`STAGES` that a transform of a training chain belongs to."""
    from monai.transforms import (
        ConvertToMultiChannelBasedOnBratsClassesd,
        EnsureTyped,
        Orientationd,
        RandCropByPosNegLabeld,
        RandSpatialCropd,
        Spacingd,
        SpatialPadd,
    )

    from fedbrats.runtime.data import transforms as t
    from fedbrats.runtime.data import zscore as z

    kinds = (
        ((t.LoadBratsCased,), "read and decode"),
        ((ConvertToMultiChannelBasedOnBratsClassesd, EnsureTyped, t.BratsRegionsd), "labels to regions"),
        ((Orientationd,), "reorient"),
        ((Spacingd, t.ToGridd), "resample"),
        ((z.NonzeroNormalized, z.NonzeroStatsd, z.NormalizeByStatsd), "normalise"),
        ((SpatialPadd,), "pad"),
        ((RandSpatialCropd, RandCropByPosNegLabeld), "crop"),
    )
    return next((stage for types, stage in kinds if isinstance(transform, types)), "augment")


def training_chain(settings, path: str) -> list:
    """The transforms of an uncached training crop on ``path``: before (the whole volume preprocessed as the cache
    does, then cropped) or now (:func:`~fedbrats.runtime.data.transforms.train_transforms`)."""
    from fedbrats.runtime.data.transforms import deterministic_transforms, random_transforms, train_transforms

    if path == "before":
        return deterministic_transforms(settings) + random_transforms(settings)
    return list(train_transforms(settings).transforms)


def timed_crop(chain: Sequence, entry: dict) -> Dict[str, float]:
    """Seconds each stage of ``chain`` takes to make one crop of ``entry``."""
    seconds = dict.fromkeys(STAGES, 0.0)
    item: object = dict(entry)
    for transform in chain:
        tick = time.perf_counter()
        item = transform(item[0] if isinstance(item, list) else item)
        seconds[stage_of(transform)] += time.perf_counter() - tick
    return seconds


def measure_profile(root: str, cases: int, crop=REFERENCE_CROP) -> dict:
    """Mean seconds per stage of one uncached crop, both paths, over ``cases`` cases (one crop each, the paths
    alternating), in a process set up as a site's training process is."""
    from fedbrats.runtime.engine import configure_cpu
    from fedbrats.runtime.settings import TrainSettings

    configure_cpu(1)
    settings = TrainSettings.from_dict({"crop": list(crop)})
    entries = site_entries(root, cases)
    chains = {path: training_chain(settings, path) for path in PATHS}
    totals = {path: dict.fromkeys(STAGES, 0.0) for path in PATHS}
    for entry in entries:
        for path in PATHS:
            for stage, seconds in timed_crop(chains[path], entry).items():
                totals[path][stage] += seconds / len(entries)
    from fedbrats.runtime.data.transforms import LoadBratsCased

    shape = list(LoadBratsCased()(dict(entries[0]))["image"].shape[1:])
    stages = {path: {k: round(v, 3) for k, v in totals[path].items()} for path in PATHS}
    return {"cases": len(entries), "case_shape": shape, "crop": list(crop), "stages_s": stages}


def loader_dataset(entries: List[dict], settings, path: str):
    """A site's training dataset; on ``before``, uncached cases preprocessed whole as the cache does, then cropped."""
    from monai.data import Dataset

    from fedbrats.runtime.data.cache import CachedCases, CachePlan
    from fedbrats.runtime.data.compact import CompactCased
    from fedbrats.runtime.data.loaders import make_dataset
    from fedbrats.runtime.data.transforms import after_cache_transforms, eval_transforms

    if path == "now":
        return make_dataset(entries, settings, train=True)
    plan = CachePlan.from_rate(settings.cache_rate, len(entries))
    cases = CachedCases(entries, eval_transforms(settings), plan, keep=CompactCased())
    return Dataset(cases, after_cache_transforms(settings, True))


def measure_loader(
    root: str, cache_rate: float, workers: int, crops: int, crop=REFERENCE_CROP, path: str = "now"
) -> dict:
    """Training crops at the reference size per second from a loader over ``crops + 1`` cases, one epoch: the first
    crop is not counted. The process is set up as a site's training process is (one thread, memory kept for reuse:
    :func:`fedbrats.runtime.engine.configure_cpu`), and its loader workers inherit that. ``path``: the uncached
    training path (:data:`PATHS`)."""
    from fedbrats.runtime.data.loaders import make_loader
    from fedbrats.runtime.engine import configure_cpu
    from fedbrats.runtime.settings import TrainSettings

    configure_cpu(1)
    settings = TrainSettings.from_dict(
        {"crop": list(crop), "cache_rate": cache_rate, "num_workers": workers, "batch_size": 1}
    )
    start = time.perf_counter()
    cases = crops + 1
    loader = make_loader(loader_dataset(site_entries(root, cases), settings, path), settings, train=True)
    prepared = time.perf_counter() - start
    times, tick = [], time.perf_counter()
    for batch in loader:  # noqa: B007 (the last batch gives the shape)
        times.append(time.perf_counter() - tick)
        tick = time.perf_counter()
    seconds = sum(times[1:])  # the first waits for the workers to start and fill their queue
    return {
        "path": path if cache_rate == 0 else "cached",
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


def verdict(values: Sequence[float], threshold: float) -> str:
    """``met`` when every qualifying figure clears ``threshold``, ``missed`` when none does, else ``not shown``."""
    cleared = [v >= threshold for v in values]
    if cleared and all(cleared):
        return "met"
    return "missed" if cleared and not any(cleared) else "not shown"


def speed_ups(rows: Sequence[dict]) -> List[dict]:
    """Crops/s now over before, per repeat and number of workers (the two measured side by side)."""
    uncached = {(r["repeat"], r["path"], r["num_workers"]): r["crops_per_s"] for r in rows if r["cache_rate"] == 0}
    return [
        {"repeat": repeat, "num_workers": workers, "speed_up": round(now / uncached[(repeat, "before", workers)], 2)}
        for (repeat, path, workers), now in uncached.items()
        if path == "now" and (repeat, "before", workers) in uncached
    ]


def per_core(rows: Sequence[dict], cpus: int) -> List[dict]:
    """Uncached crops/s now per core (a core per worker, one without workers) and what :data:`SITE_CORES` feed,
    for the settings with no more workers than this machine has cores."""
    figures = []
    for r in rows:
        if r["path"] == "now" and r["num_workers"] <= cpus:
            core = r["crops_per_s"] / max(r["num_workers"], 1)
            figures.append(
                {"repeat": r["repeat"], "num_workers": r["num_workers"], "crops_per_s_per_core": round(core, 2)}
            )
            figures[-1]["projected_crops_per_s"] = round(core * SITE_CORES, 2)
    return figures


def targets(result: dict) -> List[dict]:
    """The loader's targets, judged on full-size cases at the reference crop only."""
    profile = result["profile"]
    qualifying = profile["case_shape"] == FULL_SHAPE and profile["crop"] == REFERENCE_CROP
    gains = [r["speed_up"] for r in result["speed_up"]] if qualifying else []
    feeds = [r["projected_crops_per_s"] for r in result["per_core"]] if qualifying else []
    return [
        {
            "target": f"uncached path at least {SPEED_UP_TARGET:g}x faster",
            "min": min(gains, default=None),
            "measurements": len(gains),
            "verdict": verdict(gains, SPEED_UP_TARGET),
        },
        {
            "target": f"{SITE_CORES} cores feed at least {CROPS_TARGET:g} crops/s",
            "min": min(feeds, default=None),
            "measurements": len(feeds),
            "verdict": verdict(feeds, CROPS_TARGET),
        },
    ]


def profile_lines(profile: dict) -> List[str]:
    stages = profile["stages_s"]
    lines = [
        f"### Where an uncached crop's time goes ({profile['cases']} cases)",
        "",
        f"Seconds per stage of one crop of {'x'.join(map(str, profile['crop']))} voxels from a "
        f"{'x'.join(map(str, profile['case_shape']))} case, mean over the cases; before: the whole volume "
        "preprocessed as the cache does, then cropped and augmented; now: the whole volume decoded in its stored type "
        "and measured, only the crop flipped, turned into regions, and normalised with its intensity augmentation in "
        "one pass (counted under normalise). The loader's collation is not in it.",
        "",
        "| stage | before (s) | now (s) |",
        "|---|---|---|",
    ]
    lines += [f"| {stage} | {stages['before'][stage]} | {stages['now'][stage]} |" for stage in STAGES]
    total = {path: round(sum(stages[path].values()), 3) for path in PATHS}
    return lines + [f"| total | {total['before']} | {total['now']} |", ""]


def loader_lines(result: dict) -> List[str]:
    lines = [
        "### Training crops from the loader",
        "",
        f"Crops of {'x'.join(map(str, result['profile']['crop']))} voxels, batch 1, float32; the first crop (worker "
        "start-up) is not counted. The process is set up as a site's training process is (one torch thread, freed "
        "memory kept for reuse), and the loader's workers inherit that. Each setting measured once per repeat, the "
        "settings of a repeat one after the other.",
        "",
        "| cache | path | workers | cases | crops | crops/s (each repeat) | min crops/s |",
        "|---|---|---|---|---|---|---|",
    ]
    groups: Dict[tuple, List[dict]] = {}
    for r in result["loader"]:
        groups.setdefault((r["cache_rate"], r["path"], r["num_workers"]), []).append(r)
    for (rate, path, workers), rows in groups.items():
        cache = "off" if rate == 0 else "on (compact)"
        each = ", ".join(str(r["crops_per_s"]) for r in rows)
        low = min(r["crops_per_s"] for r in rows)
        lines.append(f"| {cache} | {path} | {workers} | {rows[0]['cases']} | {rows[0]['crops']} | {each} | {low} |")
    lines += ["", "| workers | speed-up now/before (each repeat) | min |", "|---|---|---|"]
    for workers in sorted({r["num_workers"] for r in result["speed_up"]}):
        gains = [r["speed_up"] for r in result["speed_up"] if r["num_workers"] == workers]
        lines.append(f"| {workers} | {', '.join(map(str, gains))} | {min(gains)} |")
    lines += [
        "",
        f"Per core: uncached crops/s now over the cores the loader uses (a core per worker, one without workers); "
        f"{SITE_CORES} cores: that times {SITE_CORES}, the site's training process not counted.",
        "",
        f"| workers | crops/s per core (each repeat) | {SITE_CORES} cores (min) |",
        "|---|---|---|",
    ]
    for workers in sorted({r["num_workers"] for r in result["per_core"]}):
        rows = [r for r in result["per_core"] if r["num_workers"] == workers]
        each = ", ".join(str(r["crops_per_s_per_core"]) for r in rows)
        lines.append(f"| {workers} | {each} | {min(r['projected_crops_per_s'] for r in rows)} |")
    lines += [
        "",
        f"Targets, on full-size cases at the reference crop {'x'.join(map(str, REFERENCE_CROP))} only: met when every "
        "measurement clears the target, missed when none does, otherwise not shown.",
        "",
        "| target | min | measurements | verdict |",
        "|---|---|---|---|",
    ]
    lines += [f"| {t['target']} | {t['min']} | {t['measurements']} | {t['verdict']} |" for t in result["targets"]]
    return lines


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
    lines += [""] + profile_lines(result["profile"]) + loader_lines(result)
    lines += ["", "JSON written by the command:", "", "```json", json.dumps(result, indent=2), "```", ""]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", default="workspace/bench/data_cache", help="full-size synthetic site (written if absent)"
    )
    parser.add_argument("--cases", type=int, default=40, help="cases cached for the memory figures")
    parser.add_argument("--crops", type=int, default=8, help="timed crops per loader setting (from as many cases + 1)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="loader workers, one run each")
    parser.add_argument("--repeats", type=int, default=2, help="runs of every loader setting")
    parser.add_argument("--profile-cases", type=int, default=3, help="cases of the per-stage profile")
    parser.add_argument("--crop", type=int, nargs=3, default=REFERENCE_CROP, help="training crop (targets: reference)")
    parser.add_argument("--out", default="workspace/bench/cache.json")
    parser.add_argument("--markdown", default="docs/benchmarks.md", help="file whose cache section is (re)written")
    parser.add_argument("--measure", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--measure-into", help=argparse.SUPPRESS)


def measure_one(args: argparse.Namespace) -> None:
    kind, *values = args.measure
    if kind == "cache":
        row = measure_cache(args.data, int(values[1]), values[0])
    elif kind == "profile":
        row = measure_profile(args.data, int(values[0]), [int(c) for c in values[1].split(",")])
    else:
        crop = [int(c) for c in values[3].split(",")] if len(values) > 3 else REFERENCE_CROP
        path = values[4] if len(values) > 4 else "now"
        row = measure_loader(args.data, float(values[0]), int(values[1]), int(values[2]), crop, path)
    with open(args.measure_into, "w") as f:
        json.dump(row, f)


def loader_runs(args: argparse.Namespace) -> List[dict]:
    """Every loader setting once per repeat: uncached before and now with each number of workers, then cached."""
    crop = ",".join(map(str, args.crop))
    rows = []
    for repeat in range(1, args.repeats + 1):
        settings = [(0.0, path, w) for w in args.workers for path in PATHS] + [(1.0, "now", 0)]
        for rate, path, workers in settings:
            measure = ["loader", str(rate), str(workers), str(args.crops), crop, path]
            row = run_child(args, measure, f"loader_cache{rate:g}_{path}_workers{workers}_repeat{repeat}")
            rows.append(dict(row, repeat=repeat))
    return rows


def run(args: argparse.Namespace) -> None:
    if args.measure:
        return measure_one(args)
    ensure_data(args.data, max(args.cases, args.crops + 1, args.profile_cases))
    result: Dict[str, object] = {
        "command": " ".join(["fedbrats", "bench", "cache"] + sys.argv[3:]),
        "machine": machine(),
        "date": dt.date.today().isoformat(),
        "cases": args.cases,
    }
    result["cache"] = [run_child(args, ["cache", v, str(args.cases)], f"cache_{v}") for v in ("float32", "compact")]
    crop = ",".join(map(str, args.crop))
    result["profile"] = run_child(args, ["profile", str(args.profile_cases), crop], "profile")
    result["loader"] = loader_runs(args)
    result["speed_up"] = speed_ups(result["loader"])
    result["per_core"] = per_core(result["loader"], result["machine"]["cpus"] or 1)
    result["targets"] = targets(result)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    write_section(args.markdown, SECTION, to_markdown(result))
    print(f"[bench cache] written to {os.path.abspath(args.out)} and the cache section of {args.markdown}")

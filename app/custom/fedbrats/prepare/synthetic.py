"""Write synthetic BraTS-like sites, with their datalists, in the exact BraTS 2018 layout or the MSD Task01 layout.

Both layouts hold the same cases (same seeds, names and site splits); the MSD layout adds the dataset.json that MSD
Task01 has, listing every case of every site. Each site has its scanner profile and may have its own number of cases
(:mod:`fedbrats.prepare.site_specs`); ``synthetic_sites.json`` at the data root records what was written.
"""

import argparse
import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from fedbrats.prepare.phantom.anatomy import SIZES
from fedbrats.prepare.phantom.case import write_case
from fedbrats.prepare.phantom.layouts import msd_dataset
from fedbrats.prepare.site_specs import FORMS, REFERENCE_SITES, SiteSpec, parse_sites
from fedbrats.runtime.constants import (
    BRATS_FORMAT,
    CENTRAL_SITE,
    DATA_FORMATS,
    GRADES,
    MSD_FORMAT,
    SPLITS,
)
from fedbrats.runtime.data.datalist import make_datalist, merge_datalists, write_json
from fedbrats.runtime.data.msd import DATASET_JSON, msd_files

RECORD = "synthetic_sites.json"
"""At a data root: the sites, sizes, seed and layout its synthetic data was written for."""


def _one_thread() -> None:
    torch.set_num_threads(1)


def split_sizes(n: int) -> Tuple[int, int, int]:
    """About 70/15/15 %, with at least one validation and one test case from 3 cases on."""
    if n < 3:
        return n, 0, 0
    n_val = max(1, round(0.15 * n))
    n_test = max(1, round(0.15 * n))
    return n - n_val - n_test, n_val, n_test


def _site_cases(specs: Sequence[SiteSpec], cases_per_site: int) -> Dict[str, int]:
    return {spec.name: spec.cases or cases_per_site for spec in specs}


def _splits(counts: Dict[str, int], split: Optional[Tuple[int, int, int]]) -> Dict[str, Tuple[int, int, int]]:
    return {site: tuple(split) if split is not None else split_sizes(n) for site, n in counts.items()}


def synthetic_record(
    sites: Sequence[Union[str, SiteSpec]],
    cases_per_site: int,
    size: str = "reduced",
    seed: int = 0,
    layout: str = BRATS_FORMAT,
    split: Optional[Tuple[int, int, int]] = None,
) -> dict:
    """What :func:`write_sites` records of the data it writes (``root/synthetic_sites.json``)."""
    specs = parse_sites(sites)
    counts = _site_cases(specs, cases_per_site)
    return {
        "sites": [str(replace(spec, cases=0)) for spec in specs],
        "cases": counts,
        "splits": {site: list(sizes) for site, sizes in _splits(counts, split).items()},
        "size": size,
        "seed": seed,
        "layout": layout,
    }


def read_record(root: str) -> Optional[dict]:
    """The record of the synthetic data at ``root``, or None where there is none or it cannot be read."""
    try:
        with open(os.path.join(root, RECORD)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _describe(record: dict) -> str:
    cases = " + ".join(str(n) for n in record.get("cases", {}).values())
    return (
        f"{' '.join(record.get('sites', []))}: {cases} {record.get('size')} cases, seed {record.get('seed')}, "
        f"{record.get('layout')} layout"
    )


def write_sites(
    root: str,
    sites: Sequence[Union[str, SiteSpec]],
    cases_per_site: int,
    size: str = "reduced",
    seed: int = 0,
    workers: int = 0,
    layout: str = BRATS_FORMAT,
    split: Optional[Tuple[int, int, int]] = None,
) -> Dict[str, str]:
    """Generate every case of ``sites`` (``NAME[:GRADE][:PROFILE][:CASES]``, :mod:`fedbrats.prepare.site_specs`),
    each site with its scanner profile, under ``root`` in ``layout`` and write ``root/datalists/<site>.json`` (and, in
    the MSD layout, ``root/dataset.json``), then the record ``root/synthetic_sites.json``. A site without its own
    number of cases gets ``cases_per_site``. One worker generates in this process, more in processes of their own.
    ``split``: training, validation and test cases of every site (they add up to its cases); by default
    :func:`split_sizes`."""
    specs = parse_sites(sites)
    counts = _site_cases(specs, cases_per_site)
    if split is not None:
        for spec in specs:
            if sum(split) != counts[spec.name]:
                whose = f"{spec.name}'s {spec.cases} cases" if spec.cases else f"{cases_per_site} cases per site"
                raise ValueError(f"split {tuple(split)} does not add up to {whose}")
    if layout not in DATA_FORMATS:
        raise ValueError(f"unknown layout {layout!r}; expected one of {DATA_FORMATS}")
    jobs = [
        (root, spec.name, grade, i, size, seed, layout, spec.profile)
        for spec in specs
        for i, grade in enumerate(spec.case_grades(counts[spec.name]), start=1)
    ]
    names = [spec.name for spec in specs]
    if len(names) > 1 and CENTRAL_SITE in names:
        raise ValueError(f"{CENTRAL_SITE} names the union of the sites' datalists, not a site of a federation")
    record = synthetic_record(specs, cases_per_site, size, seed, layout, split)
    if os.path.isfile(os.path.join(root, RECORD)):
        os.remove(os.path.join(root, RECORD))  # the data no longer matches it once a case is rewritten
    workers = workers or min(len(jobs), os.cpu_count() or 1, 8)
    start = time.time()
    done: Dict[str, List[str]] = {s: [] for s in names}
    grade_of: Dict[str, str] = {}

    def collect(results) -> None:
        for job, cid in zip(jobs, results):
            done[job[1]].append(cid)
            grade_of[cid] = job[2]
            count = sum(len(v) for v in done.values())
            print(f"[synthetic] {count}/{len(jobs)} {cid} ({job[7]}, {time.time() - start:.1f} s)", flush=True)

    if workers == 1:
        collect(map(write_case, *zip(*jobs)))
    elif jobs:
        # spawn, not fork: a forked child of a process whose torch thread pool is running can hang
        with ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("spawn"), initializer=_one_thread
        ) as pool:
            collect(pool.map(write_case, *zip(*jobs)))
    paths, datalists = {}, []
    for site in names:
        cut = np.cumsum((0,) + tuple(record["splits"][site]))
        cases_of = {name: done[site][cut[k] : cut[k + 1]] for k, name in enumerate(SPLITS)}
        if layout == MSD_FORMAT:
            datalists.append({name: [msd_files(c) for c in cases] for name, cases in cases_of.items()})
        else:
            datalists.append(make_datalist(cases_of, grade_of))
        paths[site] = os.path.join(root, "datalists", f"{site}.json")
        write_json(paths[site], datalists[-1])
    if len(names) > 1:
        paths[CENTRAL_SITE] = os.path.join(root, "datalists", f"{CENTRAL_SITE}.json")
        write_json(paths[CENTRAL_SITE], merge_datalists(datalists))
    if layout == MSD_FORMAT:
        entries = [msd_files(c) for s in names for c in done[s]]
        description = f"synthetic BraTS-like cases of {', '.join(map(str, specs))} (seed {seed}, {size} size)"
        write_json(os.path.join(root, DATASET_JSON), msd_dataset(entries, description))
    write_json(os.path.join(root, RECORD), record)
    return paths


def ensure_synthetic_sites(root: str, sites: Sequence[Union[str, SiteSpec]], cases: int) -> Dict[str, Dict[str, str]]:
    """Reduced-size synthetic sites (``NAME[:GRADE][:PROFILE][:CASES]``) under ``root``, each site's data root and
    datalist. Data already there is used only where its record says it was written for these sites, cases, size and
    seed; otherwise the sites are written again."""
    specs = parse_sites(sites)
    names = [spec.name for spec in specs]
    site_data = {s: {"data_root": root, "datalist": os.path.join(root, "datalists", f"{s}.json")} for s in names}
    wanted = synthetic_record(specs, cases)
    found = read_record(root)
    if found == wanted and all(os.path.isfile(d["datalist"]) for d in site_data.values()):
        print(f"[synthetic] data already in {root}", flush=True)
        return site_data
    if found is not None:
        print(f"[synthetic] {root} holds {_describe(found)}: writing it again", flush=True)
    elif os.path.isdir(os.path.join(root, "datalists")):
        print(f"[synthetic] {root} holds datalists but no {RECORD}: writing the sites again", flush=True)
    print(f"[synthetic] writing {_describe(wanted)} to {root}", flush=True)
    write_sites(root, specs, cases, "reduced")
    return site_data


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="data root to write")
    parser.add_argument(
        "--layout",
        choices=DATA_FORMATS,
        default=BRATS_FORMAT,
        help="brats: a folder per case, a file per modality (BraTS 2018); msd: imagesTr/ (4D), labelsTr/, dataset.json "
        "(MSD Task01)",
    )
    parser.add_argument(
        "--sites",
        nargs="+",
        default=REFERENCE_SITES,
        metavar="SITE[:GRADE][:PROFILE][:CASES]",
        help=f"sites to make, each {FORMS} (default: {' '.join(REFERENCE_SITES)}; the heterogeneous benchmark: "
        "the synthetic_sites of jobs/brats_hetero/job.py)",
    )
    parser.add_argument(
        "--cases", type=int, default=8, help="cases of each site that does not give its own number (default 8)"
    )
    parser.add_argument(
        "--size", choices=sorted(SIZES), default="reduced", help="full 240x240x155 at 1 mm or reduced 2 mm"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=0, help="processes (default: one per core)")


def run(args: argparse.Namespace) -> None:
    start = time.time()
    try:
        specs = parse_sites(args.sites)
    except ValueError as e:
        raise SystemExit(f"fedbrats synthetic: {e}") from None
    paths = write_sites(args.out, specs, args.cases, args.size, args.seed, args.workers, args.layout)
    where = os.path.abspath(args.out)
    record = synthetic_record(specs, args.cases, args.size, args.seed, args.layout)
    for spec in specs:
        n, sizes = record["cases"][spec.name], record["splits"][spec.name]
        hgg = spec.case_grades(n).count(GRADES[0])
        print(
            f"[synthetic] {spec.name}: {n} cases ({hgg} HGG, {n - hgg} LGG; {' / '.join(map(str, sizes))} training / "
            f"validation / testing), scanner profile {spec.profile}"
        )
    print(
        f"[synthetic] wrote {sum(record['cases'].values())} {args.size} cases of {len(specs)} sites in the "
        f"{args.layout} layout to {where} in {time.time() - start:.1f} s"
    )
    if args.layout == MSD_FORMAT:
        print(f"[synthetic] {DATASET_JSON}: {os.path.join(where, DATASET_JSON)}")
    for site, path in paths.items():
        print(f"[synthetic] datalist {site}: {path}")

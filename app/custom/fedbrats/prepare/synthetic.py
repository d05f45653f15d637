"""Write synthetic BraTS-like sites, with their datalists, in the exact BraTS 2018 layout or the MSD Task01 layout.

Both layouts hold the same cases (same seeds, names and site splits); the MSD layout adds the dataset.json that MSD
Task01 has, listing every case of every site.
"""

import argparse
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
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
    MSD_FORMAT,
    SPLITS,
)
from fedbrats.runtime.data.datalist import make_datalist, merge_datalists, write_json
from fedbrats.runtime.data.msd import DATASET_JSON, msd_files


def _one_thread() -> None:
    torch.set_num_threads(1)


def split_sizes(n: int) -> Tuple[int, int, int]:
    """About 70/15/15 %, with at least one validation and one test case from 3 cases on."""
    if n < 3:
        return n, 0, 0
    n_val = max(1, round(0.15 * n))
    n_test = max(1, round(0.15 * n))
    return n - n_val - n_test, n_val, n_test


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
    """Generate every case of ``sites`` (names or ``NAME:GRADE``, :mod:`fedbrats.prepare.site_specs`) under ``root`` in
    ``layout`` and write ``root/datalists/<site>.json`` (and, in the MSD layout, ``root/dataset.json``). One worker
    generates in this process, more in processes of their own. ``split``: training, validation and test cases per
    site (they add up to ``cases_per_site``); by default :func:`split_sizes`."""
    specs = parse_sites(sites)
    if split is not None and sum(split) != cases_per_site:
        raise ValueError(f"split {tuple(split)} does not add up to {cases_per_site} cases per site")
    if layout not in DATA_FORMATS:
        raise ValueError(f"unknown layout {layout!r}; expected one of {DATA_FORMATS}")
    jobs = [
        (root, spec.name, grade, i, size, seed, layout)
        for spec in specs
        for i, grade in enumerate(spec.case_grades(cases_per_site), start=1)
    ]
    names = [spec.name for spec in specs]
    if len(names) > 1 and CENTRAL_SITE in names:
        raise ValueError(f"{CENTRAL_SITE} names the union of the sites' datalists, not a site of a federation")
    workers = workers or min(len(jobs), os.cpu_count() or 1, 8)
    start = time.time()
    done: Dict[str, List[str]] = {s: [] for s in names}
    grade_of: Dict[str, str] = {}

    def collect(results) -> None:
        for job, cid in zip(jobs, results):
            done[job[1]].append(cid)
            grade_of[cid] = job[2]
            count = sum(len(v) for v in done.values())
            print(f"[synthetic] {count}/{len(jobs)} {cid} ({time.time() - start:.1f} s)", flush=True)

    if workers == 1:
        collect(map(write_case, *zip(*jobs)))
    else:
        # spawn, not fork: a forked child of a process whose torch thread pool is running can hang
        with ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("spawn"), initializer=_one_thread
        ) as pool:
            collect(pool.map(write_case, *zip(*jobs)))
    paths, datalists = {}, []
    for site in names:
        sizes = tuple(split) if split is not None else split_sizes(len(done[site]))
        cut = np.cumsum((0,) + sizes)
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
    return paths


def ensure_synthetic_sites(root: str, sites: Sequence[Union[str, SiteSpec]], cases: int) -> Dict[str, Dict[str, str]]:
    """Reduced-size synthetic sites (names or ``NAME:GRADE``) under ``root`` unless already there; each site's data
    root and datalist."""
    names = [spec.name for spec in parse_sites(sites)]
    site_data = {s: {"data_root": root, "datalist": os.path.join(root, "datalists", f"{s}.json")} for s in names}
    if all(os.path.isfile(d["datalist"]) for d in site_data.values()):
        print(f"[synthetic] data already in {root}", flush=True)
    else:
        print(f"[synthetic] writing {cases} synthetic cases per site to {root}", flush=True)
        write_sites(root, sites, cases, "reduced")
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
        metavar="SITE[:GRADE]",
        help=f"sites to make, each {FORMS} (default: {' '.join(REFERENCE_SITES)})",
    )
    parser.add_argument("--cases", type=int, default=8, help="cases per site (default 8)")
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
    print(
        f"[synthetic] wrote {args.cases} {args.size} cases per site ({', '.join(map(str, specs))}) in the "
        f"{args.layout} layout to {where} in {time.time() - start:.1f} s"
    )
    if args.layout == MSD_FORMAT:
        print(f"[synthetic] {DATASET_JSON}: {os.path.join(where, DATASET_JSON)}")
    for site, path in paths.items():
        print(f"[synthetic] datalist {site}: {path}")

"""Write synthetic BraTS-like sites in the exact BraTS 2018 layout, with their datalists."""

import argparse
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Dict, List, Sequence, Tuple

import nibabel as nib
import numpy as np
import torch

from ...constants import CENTRAL_SITE, LABEL_SUFFIX, MODALITIES, SITE_GRADES, SPLITS
from ...datalist import make_datalist, merge_datalists, write_json
from .anatomy import SIZES, deform, tissue_maps
from .imaging import render, tumour_fractions
from .tumour import PROFILES, pick_centre, tumour_labels


def case_id(site: str, grade: str, index: int) -> str:
    return f"Synth18_{grade}_{site.replace('-', '')}_{index:03d}"


def generate_case(grade: str, size: str, seed: Sequence[int]) -> Tuple[Dict[str, np.ndarray], np.ndarray, dict]:
    """Volumes of one case: the 4 modalities and ``seg``, the affine and the sampled tumour sizes."""
    rng = np.random.default_rng(list(seed))
    template, affine = tissue_maps(size)
    voxel_mm = float(SIZES[size])
    profile = PROFILES[grade]
    centre = pick_centre(template["wm"], template["brain"], rng, profile.core_radius[1] / voxel_mm)
    anatomy = deform(template, rng, voxel_mm, centre, rng.uniform(*profile.core_radius))
    labels, info = tumour_labels(grade, centre, anatomy, voxel_mm, rng)
    fractions = tumour_fractions(labels, profile.necrotic, voxel_mm)
    volumes = {m: render(m, anatomy, fractions, voxel_mm, rng) for m in MODALITIES}
    volumes[LABEL_SUFFIX] = labels
    return volumes, affine, info


def write_case(root: str, site: str, grade: str, index: int, size: str, seed: int) -> str:
    cid = case_id(site, grade, index)
    folder = os.path.join(root, grade, cid)
    os.makedirs(folder, exist_ok=True)
    site_number = int("".join(ch for ch in site if ch.isdigit()) or 0)
    volumes, affine, _ = generate_case(grade, size, (seed, site_number, index))
    for name, volume in volumes.items():
        img = nib.Nifti1Image(volume, affine)
        img.header.set_xyzt_units("mm", "sec")
        path = os.path.join(folder, f"{cid}_{name}.nii.gz")
        nib.save(img, f"{path}.part.nii.gz")
        os.replace(f"{path}.part.nii.gz", path)
    return cid


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
    root: str, sites: Sequence[str], cases_per_site: int, size: str = "reduced", seed: int = 0, workers: int = 0
) -> Dict[str, str]:
    """Generate every case of ``sites`` under ``root`` and write ``root/datalists/<site>.json``."""
    for site in sites:
        if site not in SITE_GRADES:
            raise ValueError(f"unknown site {site!r}; synthetic sites are {sorted(SITE_GRADES)}")
    jobs = [(root, s, SITE_GRADES[s], i, size, seed) for s in sites for i in range(1, cases_per_site + 1)]
    workers = workers or min(len(jobs), os.cpu_count() or 1, 8)
    start = time.time()
    done: Dict[str, List[str]] = {s: [] for s in sites}
    # spawn, not fork: a forked child of a process whose torch thread pool is running can hang
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn"), initializer=_one_thread
    ) as pool:
        for job, cid in zip(jobs, pool.map(write_case, *zip(*jobs))):
            done[job[1]].append(cid)
            count = sum(len(v) for v in done.values())
            print(f"[synthetic] {count}/{len(jobs)} {cid} ({time.time() - start:.1f} s)", flush=True)
    paths, datalists = {}, []
    for site in sites:
        sizes = split_sizes(len(done[site]))
        cut = np.cumsum((0,) + sizes)
        split = {name: done[site][cut[k] : cut[k + 1]] for k, name in enumerate(SPLITS)}
        datalists.append(make_datalist(split, {c: SITE_GRADES[site] for c in done[site]}))
        paths[site] = os.path.join(root, "datalists", f"{site}.json")
        write_json(paths[site], datalists[-1])
    if len(sites) > 1:
        paths[CENTRAL_SITE] = os.path.join(root, "datalists", f"{CENTRAL_SITE}.json")
        write_json(paths[CENTRAL_SITE], merge_datalists(datalists))
    return paths


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="data root to write (BraTS 2018 layout)")
    parser.add_argument("--sites", nargs="+", default=list(SITE_GRADES), help="sites to make (site-1 HGG, site-2 LGG)")
    parser.add_argument("--cases", type=int, default=8, help="cases per site (default 8)")
    parser.add_argument(
        "--size", choices=sorted(SIZES), default="reduced", help="full 240x240x155 at 1 mm or reduced 2 mm"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=0, help="processes (default: one per core)")


def run(args: argparse.Namespace) -> None:
    start = time.time()
    paths = write_sites(args.out, args.sites, args.cases, args.size, args.seed, args.workers)
    where = os.path.abspath(args.out)
    print(f"[synthetic] wrote {args.cases} {args.size} cases per site to {where} in {time.time() - start:.1f} s")
    for site, path in paths.items():
        print(f"[synthetic] datalist {site}: {path}")

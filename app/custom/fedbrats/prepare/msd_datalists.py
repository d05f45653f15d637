"""``fedbrats msd-datalists``: site datalists of the Medical Segmentation Decathlon's Task01_BrainTumour.

Task01 (484 labelled cases from BraTS 2016 and 2017) has no grade column, so its cases are shuffled once with a seed
and cut into sites whose training / validation / testing sizes keep the proportions of the BraTS 2018 reference
split. With 2 sites (the default) they are the reference's own, site-1 144/30/36 and site-2 56/12/7 of 285 cases,
scaled to the dataset (484 cases: site-1 245/51/61, site-2 95/20/12). With N sites every site gets an equal share,
split as the whole reference is (200/42/43 of 285). Sizes are rounded by largest remainder, so that they add up to
the number of cases. The datalists' paths are relative to the dataset's folder (the data root).
"""

import argparse
import json
import os
from fractions import Fraction
from typing import Dict, List, Sequence, Tuple

from fedbrats.prepare.datalists import DEFAULT_SEED
from fedbrats.runtime.constants import CENTRAL_SITE, MSD_CHANNEL_NAMES, MSD_FORMAT, REFERENCE_SPLIT_SIZES, SPLITS
from fedbrats.runtime.data.datalist import Datalist, merge_datalists, resolve_path, split_sites, write_json
from fedbrats.runtime.data.msd import file_case_name
from fedbrats.runtime.errors import BratsDataError

DEFAULT_OUT = "datalists"
"""Folder of the site datalists below the dataset's folder, where a job looks for ``datalists/<site>.json``."""


def site_names(n_sites: int) -> List[str]:
    return [f"site-{k}" for k in range(1, n_sites + 1)]


def apportion(total: int, weights: Sequence[int]) -> List[int]:
    """``total`` split in proportion to ``weights`` by largest remainder (on a tie the earlier weight wins)."""
    quotas = [Fraction(total * w, sum(weights)) for w in weights]
    sizes = [int(q) for q in quotas]
    order = sorted(range(len(weights)), key=lambda i: (sizes[i] - quotas[i], i))
    for i in order[: total - sum(sizes)]:
        sizes[i] += 1
    return sizes


def site_sizes(n_cases: int, n_sites: int = 2) -> List[Tuple[int, int, int]]:
    """(training, validation, testing) cases of each site, in the proportions of the BraTS 2018 reference split."""
    if n_sites < 1:
        raise ValueError(f"need at least one site, got {n_sites}")
    if n_sites == len(REFERENCE_SPLIT_SIZES):
        weights = [size for sizes in REFERENCE_SPLIT_SIZES.values() for size in sizes]
    else:
        weights = [sum(sizes[k] for sizes in REFERENCE_SPLIT_SIZES.values()) for k in range(len(SPLITS))] * n_sites
    flat = apportion(n_cases, weights)
    return [tuple(flat[3 * k : 3 * k + 3]) for k in range(n_sites)]


def check_modalities(dataset: dict, path: str) -> None:
    """Refuses a dataset.json whose ``modality`` is not Task01's FLAIR, T1w, t1gd, T2w (in that channel order)."""
    modality = dataset.get("modality")
    if modality is None:
        return
    names = [str(modality.get(str(k), "")) for k in range(len(modality))] if isinstance(modality, dict) else []
    if [n.lower() for n in names] != [n.lower() for n in MSD_CHANNEL_NAMES]:
        raise BratsDataError(
            f"dataset.json lists the modalities {modality}; the MSD Task01 layout has the 4D image channels "
            f"{', '.join(MSD_CHANNEL_NAMES)} in this order",
            path=path,
        )


def read_dataset_json(path: str) -> Dict[str, Dict[str, str]]:
    """Case -> ``{"image", "label", "format": "msd"}`` of every ``training`` case of an MSD dataset.json, with paths
    relative to its folder; refuses a malformed file, a path outside the folder and a missing file."""
    try:
        with open(path) as f:
            dataset = json.load(f)
    except FileNotFoundError:
        raise BratsDataError("dataset.json not found", path=path) from None
    except (OSError, ValueError) as e:
        raise BratsDataError(f"cannot read dataset.json ({e})", path=path) from None
    training = dataset.get("training") if isinstance(dataset, dict) else None
    if not isinstance(training, list) or not training:
        raise BratsDataError("dataset.json has no non-empty list 'training'", path=path)
    check_modalities(dataset, path)
    root = os.path.dirname(os.path.abspath(path))
    cases: Dict[str, Dict[str, str]] = {}
    for i, item in enumerate(training):
        if not (isinstance(item, dict) and isinstance(item.get("image"), str) and isinstance(item.get("label"), str)):
            raise BratsDataError(f"entry {i} of 'training' must be {{'image': path, 'label': path}}", path=path)
        case = file_case_name(item["image"])
        if case in cases:
            raise BratsDataError(f"two entries of 'training' are named {case}", case=case, path=path)
        entry = {"image": os.path.normpath(item["image"]), "label": os.path.normpath(item["label"])}
        for rel in entry.values():
            resolve_path(rel, root, case)
        cases[case] = {**entry, "format": MSD_FORMAT}
    return cases


def msd_datalists(dataset_json: str, n_sites: int = 2, seed: int = DEFAULT_SEED) -> Dict[str, Datalist]:
    """Datalists of ``site-1`` ... ``site-N`` and ``site-All``, deterministic for a given seed."""
    entries = read_dataset_json(dataset_json)
    sites = site_names(n_sites)
    sizes = site_sizes(len(entries), n_sites)
    for site, site_split in zip(sites, sizes):
        empty = [split for split, size in zip(SPLITS, site_split) if size == 0]
        if empty:
            raise BratsDataError(
                f"{len(entries)} cases are too few for {n_sites} site(s): {site} would have no {empty[0]} case",
                path=dataset_json,
            )
    out = {}
    for site, split in zip(sites, split_sites(list(entries), sizes, seed)):
        out[site] = {s: [entries[c] for c in split[s]] for s in SPLITS}
    out[CENTRAL_SITE] = merge_datalists([out[s] for s in sites])
    return out


def write_msd_datalists(
    dataset_json: str, out_dir: str = "", n_sites: int = 2, seed: int = DEFAULT_SEED
) -> Dict[str, Tuple[str, Datalist]]:
    """Write ``<site>.json`` of every site and ``site-All.json``; default folder: ``datalists/`` beside dataset.json."""
    out_dir = out_dir or os.path.join(os.path.dirname(os.path.abspath(dataset_json)), DEFAULT_OUT)
    written = {}
    for site, datalist in msd_datalists(dataset_json, n_sites, seed).items():
        path = os.path.join(out_dir, f"{site}.json")
        write_json(path, datalist)
        written[site] = (path, datalist)
    return written


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset-json", required=True, help="dataset.json of Task01_BrainTumour (in its folder)")
    parser.add_argument("--out", default="", help="output folder (default: datalists/ beside dataset.json)")
    parser.add_argument("--sites", type=int, default=2, help="number of sites (default 2: the reference proportions)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)


def run(args: argparse.Namespace) -> None:
    if args.sites < 1:
        raise SystemExit("fedbrats msd-datalists: --sites must be at least 1")
    written = write_msd_datalists(args.dataset_json, args.out, args.sites, args.seed)
    for site, (path, datalist) in written.items():
        counts = ", ".join(f"{len(datalist[s])} {s}" for s in SPLITS)
        print(f"{site}: {counts} -> {path}")
    print(f"data root: {os.path.dirname(os.path.abspath(args.dataset_json))} (seed {args.seed})")

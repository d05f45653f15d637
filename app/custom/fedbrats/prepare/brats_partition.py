"""``fedbrats brats-partition``: BraTS 2018 split into sites by the institution that acquired each case.

A BraTS 2018 case id names its institution: ``Brats18_CBICA_AAB_1`` (CBICA), ``Brats18_TCIA01_131_1`` (TCIA
collection 01), ``Brats18_2013_2_1`` (the BraTS 2013 cases); the FeTS challenge partitions its data this way. The
285 training cases come from 13 institutions. Each becomes a site, or ``--sites N`` groups them into N sites balanced
by case count: institutions in order of size (largest first, ties by name) each join the site with the fewest cases
so far (ties: the lower site number). Sites are numbered in that order. Each site's cases are shuffled with the seed
and split into training / validation / testing in the proportions of the whole reference split (200 / 42 / 43 of
285), with at least one validation and one testing case.
"""

import argparse
import os
import re
from collections import Counter
from typing import Dict, List, Mapping, Optional, Tuple

from fedbrats.package_data import CASE_TABLE, REFERENCE_DATALISTS
from fedbrats.prepare.datalists import DEFAULT_SEED
from fedbrats.prepare.msd_datalists import apportion, site_names
from fedbrats.runtime.constants import CENTRAL_SITE, GRADES, REFERENCE_SPLIT_SIZES, SPLITS
from fedbrats.runtime.data.datalist import (
    Datalist,
    make_datalist,
    merge_datalists,
    read_case_table,
    split_cases,
    write_json,
)
from fedbrats.runtime.errors import BratsDataError

INSTITUTION = re.compile(r"^Brats18_(2013|CBICA|TCIA\d{2})_")
"""The institution part of a BraTS 2018 case id."""
PARTITIONS = ("institution",)
INSTITUTIONS_DIR = os.path.join(REFERENCE_DATALISTS, "institutions")
"""The package's partition: one site per institution."""
PARTITION_FILE = "partition.json"
"""Beside the datalists: each site's institutions, case counts per split and grade, the seed."""
SPLIT_WEIGHTS = [sum(sizes[k] for sizes in REFERENCE_SPLIT_SIZES.values()) for k in range(len(SPLITS))]


def institution(case_id: str, path: str = "") -> str:
    """The institution of a BraTS 2018 case id (``CBICA``, ``TCIA01`` ... ``TCIA13``, ``2013``)."""
    found = INSTITUTION.match(case_id)
    if not found:
        raise BratsDataError(
            "the case id names no institution: expected Brats18_<CBICA|TCIAnn|2013>_<id>_<n>", case=case_id, path=path
        )
    return found.group(1)


def cases_by_institution(grade_of: Mapping[str, str], path: str = "") -> Dict[str, List[str]]:
    out: Dict[str, List[str]] = {}
    for case in sorted(grade_of):
        out.setdefault(institution(case, path), []).append(case)
    return out


def group_institutions(counts: Mapping[str, int], n_sites: int) -> List[List[str]]:
    """Institutions grouped into ``n_sites`` sites of about equal case counts (see the module), largest first."""
    if not 1 <= n_sites <= len(counts):
        raise ValueError(f"--sites must be from 1 to the number of institutions ({len(counts)}), got {n_sites}")
    groups: List[List[str]] = [[] for _ in range(n_sites)]
    totals = [0] * n_sites
    for name in sorted(counts, key=lambda n: (-counts[n], n)):
        site = min(range(n_sites), key=lambda k: (totals[k], k))
        groups[site].append(name)
        totals[site] += counts[name]
    return groups


def split_sizes(n_cases: int) -> Tuple[int, int, int]:
    """(training, validation, testing) of a site: the reference split's proportions, at least one of each but
    training."""
    if n_cases < 3:
        raise ValueError(f"a site needs at least 3 cases (training, validation, testing), got {n_cases}")
    train, val, test = apportion(n_cases, SPLIT_WEIGHTS)
    missing = (val < 1) + (test < 1)
    return train - missing, max(val, 1), max(test, 1)


def institution_partition(
    case_table: str = CASE_TABLE, n_sites: Optional[int] = None, seed: int = DEFAULT_SEED
) -> Tuple[Dict[str, Datalist], dict]:
    """Datalists of ``site-1`` ... and ``site-All``, and the partition's summary (:data:`PARTITION_FILE`)."""
    grade_of = read_case_table(case_table)
    by_institution = cases_by_institution(grade_of, case_table)
    counts = {name: len(cases) for name, cases in by_institution.items()}
    groups = group_institutions(counts, n_sites or len(counts))
    datalists: Dict[str, Datalist] = {}
    summary = {"by": "institution", "seed": seed, "cases": len(grade_of), "sites": {}}
    for site, names in zip(site_names(len(groups)), groups):
        cases = [c for name in names for c in by_institution[name]]
        split = split_cases(cases, split_sizes(len(cases)), seed)
        datalists[site] = make_datalist(split, grade_of)
        grades = Counter(grade_of[c] for c in cases)
        summary["sites"][site] = {
            "institutions": {name: counts[name] for name in names},
            "cases": len(cases),
            **{s: len(split[s]) for s in SPLITS},
            **{g: grades.get(g, 0) for g in GRADES},
        }
    datalists[CENTRAL_SITE] = merge_datalists([datalists[s] for s in summary["sites"]])
    return datalists, summary


def write_partition(
    out_dir: str, case_table: str = CASE_TABLE, n_sites: Optional[int] = None, seed: int = DEFAULT_SEED
) -> Tuple[Dict[str, str], dict]:
    """Write ``<site>.json`` of every site, ``site-All.json`` and :data:`PARTITION_FILE` into ``out_dir``."""
    datalists, summary = institution_partition(case_table, n_sites, seed)
    paths = {}
    for site, datalist in datalists.items():
        paths[site] = os.path.join(out_dir, f"{site}.json")
        write_json(paths[site], datalist)
    write_json(os.path.join(out_dir, PARTITION_FILE), summary)
    return paths, summary


def describe(site: str, info: Mapping[str, object]) -> str:
    """One line of a site: its institutions and its cases per split and grade."""
    names = ", ".join(f"{name} ({n})" for name, n in info["institutions"].items())
    splits = ", ".join(f"{info[s]} {s}" for s in SPLITS)
    grades = ", ".join(f"{info[g]} {g}" for g in GRADES)
    return f"{site}: {info['cases']} cases ({grades}) from {names}: {splits}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--by", choices=PARTITIONS, default=PARTITIONS[0], help="what makes a site (its institution)")
    parser.add_argument("--sites", type=int, help="group the institutions into N sites (default: one per institution)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument(
        "--cases",
        default=CASE_TABLE,
        help="tab-separated case_id/grade table of the 285 BraTS 2018 training cases (default: the package's)",
    )
    parser.add_argument(
        "--out",
        help="output folder (default, one site per institution only: the package's datalists/institutions/); "
        "put it in <data root>/datalists/ for the sites to find their datalists there",
    )


def run(args: argparse.Namespace) -> None:
    if args.out is None and args.sites is not None:
        raise SystemExit(
            "fedbrats brats-partition: give --out for a grouping into --sites N; the package holds the partition of "
            "one site per institution"
        )
    out = args.out or INSTITUTIONS_DIR
    try:
        paths, summary = write_partition(out, args.cases, args.sites, args.seed)
    except ValueError as e:
        raise SystemExit(f"fedbrats brats-partition: {e}") from None
    for site, info in summary["sites"].items():
        print(f"{describe(site, info)} -> {paths[site]}")
    print(f"{CENTRAL_SITE}: every site's cases -> {paths[CENTRAL_SITE]}")
    print(f"{len(summary['sites'])} sites of {summary['cases']} cases by institution (seed {args.seed}) in {out}")

"""The reference site split of BraTS 2018 (site-1 HGG, site-2 LGG) made from the case table."""

import argparse
import os
from typing import Dict

from fedbrats.package_data import CASE_TABLE, REFERENCE_DATALISTS
from fedbrats.runtime.constants import CENTRAL_SITE, REFERENCE_SPLIT_SIZES, SITE_GRADES
from fedbrats.runtime.data.datalist import (
    Datalist,
    make_datalist,
    merge_datalists,
    read_case_table,
    split_cases,
    write_json,
)

DEFAULT_SEED = 2018


def reference_datalists(case_table: str, seed: int = DEFAULT_SEED) -> Dict[str, Datalist]:
    """Datalists of site-1, site-2 and site-All, deterministic for a given seed."""
    grade_of = read_case_table(case_table)
    out = {}
    for site, grade in SITE_GRADES.items():
        cases = [c for c, g in grade_of.items() if g == grade]
        out[site] = make_datalist(split_cases(cases, REFERENCE_SPLIT_SIZES[site], seed), grade_of)
    out[CENTRAL_SITE] = merge_datalists([out[s] for s in SITE_GRADES])
    return out


def write_reference_datalists(case_table: str, out_dir: str, seed: int = DEFAULT_SEED) -> Dict[str, str]:
    paths = {}
    for site, datalist in reference_datalists(case_table, seed).items():
        paths[site] = os.path.join(out_dir, f"{site}.json")
        write_json(paths[site], datalist)
    return paths


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cases",
        default=CASE_TABLE,
        help="tab-separated case_id/grade table of the 285 BraTS 2018 training cases (default: the package's)",
    )
    parser.add_argument(
        "--out", default=REFERENCE_DATALISTS, help="output folder (default: the package's reference datalists)"
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)


def run(args: argparse.Namespace) -> None:
    for site, path in write_reference_datalists(args.cases, args.out, args.seed).items():
        print(f"{site}: {path}")

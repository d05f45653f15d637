"""The accuracy study's benchmarks and their synthetic data: each site's split, the data written once per
``--out``, the sites' test loaders and which regions their test cases hold.

Two benchmarks: ``reference``, the HGG and the LGG site of the reference federation with as many cases each, and
``hetero``, the four unequal sites of the ``brats_hetero`` job, each with its own cases, grades and scanner.
"""

import dataclasses
import functools
import json
import os
from typing import Dict, List, Optional, Sequence, Tuple

from fedbrats.evaluation.report import weighted_average
from fedbrats.federation.catalog import DEMO_JOB, job_definition
from fedbrats.prepare.site_specs import REFERENCE_SITES, SiteSpec, parse_sites
from fedbrats.prepare.synthetic import RECORD, read_record, split_sizes, write_sites
from fedbrats.runtime.constants import CENTRAL_SITE, DICE, PER_CASE, REGIONS, metric_name
from fedbrats.runtime.data.datalist import merge_datalists, write_json
from fedbrats.runtime.data.loaders import site_loader
from fedbrats.runtime.metrics import region_counts
from fedbrats.runtime.settings import TrainSettings

REFERENCE, HETERO = "reference", "hetero"
BENCHMARKS = (REFERENCE, HETERO)
HETERO_JOB = "brats_hetero"
DATA_FILE = "study_data.json"


@dataclasses.dataclass(frozen=True)
class Benchmark:
    """The synthetic sites a study trains on (a site without its own number of cases gets ``--cases``) and the job
    its federated arms run."""

    name: str
    job: str
    specs: Tuple[SiteSpec, ...]

    @property
    def sites(self) -> List[str]:
        return [spec.name for spec in self.specs]


@functools.cache
def benchmark(name: str = REFERENCE) -> Benchmark:
    """``reference``: site-1 (HGG) and site-2 (LGG) of the demo job; ``hetero``: the ``synthetic_sites`` of the
    ``brats_hetero`` job, each with its own cases, grades and scanner profile."""
    if name == REFERENCE:
        return Benchmark(REFERENCE, DEMO_JOB, tuple(parse_sites(REFERENCE_SITES)))
    if name == HETERO:
        return Benchmark(HETERO, HETERO_JOB, tuple(parse_sites(job_definition(HETERO_JOB).synthetic_sites)))
    raise ValueError(f"benchmark must be one of {BENCHMARKS}, got {name!r}")


def data_split(cases: int, test_cases: int = 0) -> Tuple[int, int, int]:
    """Training, validation and test cases per site: ``cases`` split about 70/15/15, its test share raised to
    ``test_cases`` (more held-out cases cost no training, and steady the comparison)."""
    train, val, test = split_sizes(cases)
    return train, val, max(test, test_cases)


def site_splits(bench: Benchmark, cases: int, test_cases: int = 0) -> Dict[str, Tuple[int, int, int]]:
    """Each site's :func:`data_split` of its own number of cases (``cases`` where it has none)."""
    return {spec.name: data_split(spec.cases or cases, test_cases) for spec in bench.specs}


def datalist_path(data_root: str, site: str) -> str:
    return os.path.join(data_root, "datalists", f"{site}.json")


def data_marker(bench: Benchmark, splits: Dict[str, Tuple[int, int, int]], seed: int) -> dict:
    """What ``study_data.json`` records of a study's data (the reference benchmark: its one split and the seed)."""
    if bench.name == REFERENCE:
        return {"split": list(next(iter(splits.values()))), "seed": seed}
    sites = [str(s) for s in bench.specs]
    return {"benchmark": bench.name, "sites": sites, "splits": {s: list(v) for s, v in splits.items()}, "seed": seed}


def data_words(marker: dict) -> str:
    if "split" in marker:
        return f"split {marker['split']} and seed {marker['seed']}"
    return f"the sites {' '.join(marker['sites'])} split {marker['splits']} and seed {marker['seed']}"


def write_sites_apart(data_root: str, bench: Benchmark, splits: Dict[str, Tuple[int, int, int]], seed: int) -> None:
    """Every site of ``bench`` with its own split (the generator takes one split for the sites it writes at once),
    then the union's datalist and one record of them all."""
    records = []
    for spec in bench.specs:
        split = splits[spec.name]
        print(
            f"[study] writing {sum(split)} synthetic cases of {spec.name} ({spec.grade}, scanner {spec.profile}; "
            f"{'/'.join(map(str, split))}) to {data_root}",
            flush=True,
        )
        write_sites(data_root, [dataclasses.replace(spec, cases=0)], sum(split), "reduced", seed, split=split)
        records.append(read_record(data_root))
    datalists = []
    for site in bench.sites:
        with open(datalist_path(data_root, site)) as f:
            datalists.append(json.load(f))
    write_json(datalist_path(data_root, CENTRAL_SITE), merge_datalists(datalists))
    record = {**records[0], "sites": [s for r in records for s in r["sites"]]}
    record.update({part: {k: v for r in records for k, v in r[part].items()} for part in ("cases", "splits")})
    write_json(os.path.join(data_root, RECORD), record)


def study_data(out: str, cases: int, seed: int, test_cases: int = 0, bench: Optional[Benchmark] = None) -> str:
    """The study's synthetic sites under ``out/data``, written unless they are there; returns the data root.
    Data written for another size, seed or benchmark is an error: the arms would not be comparable."""
    bench = bench or benchmark()
    data_root = os.path.join(out, "data")
    splits = site_splits(bench, cases, test_cases)
    wanted = data_marker(bench, splits, seed)
    marker = os.path.join(data_root, DATA_FILE)
    if os.path.isfile(datalist_path(data_root, CENTRAL_SITE)):
        found = None
        if os.path.isfile(marker):
            with open(marker) as f:
                found = json.load(f)
        if found not in (None, wanted):
            if "split" in found and "split" in wanted:
                raise SystemExit(
                    f"{data_root} holds synthetic data of split {found['split']} and seed {found['seed']}, not "
                    f"{wanted['split']} and {seed}; choose another --out"
                )
            words = f"{data_words(found)}, not {data_words(wanted)}"
            raise SystemExit(f"{data_root} holds synthetic data of {words}; choose another --out")
        return data_root
    if bench.name == REFERENCE:
        split = data_split(cases, test_cases)
        sizes = "/".join(map(str, split))
        print(f"[study] writing {sum(split)} synthetic cases per site ({sizes}) to {data_root}", flush=True)
        write_sites(data_root, bench.sites, sum(split), "reduced", seed, split=split)
    else:
        write_sites_apart(data_root, bench, splits, seed)
    write_json(marker, wanted)
    return data_root


def test_loaders(data_root: str, settings: TrainSettings, sites: Sequence[str]) -> Dict[str, object]:
    return {s: site_loader(datalist_path(data_root, s), data_root, "testing", settings, train=False) for s in sites}


def test_presence(data_root: str, settings: TrainSettings, sites: Sequence[str]) -> Dict[str, Dict[str, List[float]]]:
    """For every site's test cases, in their order, whether each region is in the reference as the arms were scored
    (the labels preprocessed with ``settings``): ``{site: {region: [1.0 or 0.0 per case]}}``."""
    presence = {}
    for site, loader in test_loaders(data_root, settings, sites).items():
        labels = [batch["label"][0] for batch in loader]
        presence[site] = {r: [float(label[k].any()) for label in labels] for k, r in enumerate(REGIONS)}
    return presence


def add_region_counts(study: dict, presence: Dict[str, Dict[str, List[float]]]) -> None:
    """Give every site result of ``study`` that has per-case Dice its region counts, and every model its average
    again (results recorded before the evaluation counted regions)."""
    for arm in study["arms"].values():
        for model in arm["models"].values():
            for site, result in model["sites"].items():
                if result is not None and PER_CASE in result:
                    for region in REGIONS:
                        dice = result[PER_CASE][metric_name(DICE, region)]
                        result.update(region_counts(dice, presence[site][region], region))
            model["average"] = weighted_average(model["sites"])


def recorded_cases(split: List[int]) -> Tuple[int, int]:
    """(``--cases``, ``--test-cases``) of a recorded split."""
    cases = next(n for n in range(3, 10 * sum(split)) if data_split(n, split[2]) == tuple(split))
    return cases, split[2]

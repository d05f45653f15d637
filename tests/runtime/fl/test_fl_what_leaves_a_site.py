"""What leaves a site, seen at the site: every answer as it goes out, after the site's own filters, and every model the
site receives, in real tiny runs of two rounds with two sites holding different cases: without a privacy filter, with
FLARE's SVT filter and with ExcludeVars (FLARE's percentile filter sends weight differences as SVT does, and is wired
into the job as every filter is: tests/federation/test_jobs.py).

An answer may hold model weights (or their differences) of the model's own tensors and shapes, scores (Dice, HD95,
counts of cases and of regions, per-case values each sorted on its own), step counts, round numbers and FLARE's own
headers; never image data, labels, file paths, case identifiers or the name of a data root. With a privacy filter
the sites send weight differences and their local models stay at the sites.
"""

import glob
import json
import os

import pytest
from builders import TINY_TRAINING
from probe_jobs import SITES, probe_job, run_probe_job, tiny_sites

from fedbrats.runners.simulate import simulator_log
from fedbrats.runtime.constants import MEAN_DICE, N_CASES, PER_CASE, REGION_COUNTS, SCORE_METRICS
from fedbrats.runtime.model import build_model
from fedbrats.runtime.settings import TrainSettings

pytestmark = pytest.mark.slow

SIZES = {"site-1": (2, 3, 3), "site-2": (2, 2, 4)}
"""Training, validation and testing cases of each site: other numbers, other cases."""
CASES = {site: {"validation": sizes[1], "testing": sizes[2]} for site, sizes in SIZES.items()}
SCORES = set(SCORE_METRICS) | set(REGION_COUNTS) | {MEAN_DICE, N_CASES}
WEIGHT_META = {"NUM_STEPS_CURRENT_ROUND", "initial_metrics", "round"}
FILTER_META = {
    "svt": {"filter_history", "svt_privacy_budget", "svt_privacy_accountant"},
    "percentile": {"filter_history"},
    "exclude": {"filter_history"},
}
FILTERS = {"svt": ["SVTPrivacy"], "percentile": ["PercentilePrivacy"], "exclude": ["ExcludeVars"]}


def leaves(value, path=()):
    """(path, leaf) of every value in a recorded description; an array is one leaf."""
    if isinstance(value, dict) and "__array__" not in value:
        for k, v in value.items():
            yield (*path, k), k  # keys are content too
            yield from leaves(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from leaves(v, (*path, i))
    else:
        yield path, value


def records(folder, direction):
    for path in sorted(glob.glob(os.path.join(folder, f"{direction}_*.json"))):
        yield path, json.load(open(path))


def check_weights(path, dxo, task, privacy, shapes):
    filtered = privacy != "none" and task == "train"
    assert dxo["kind"] == ("WEIGHT_DIFF" if filtered else "WEIGHTS"), path
    sent = {k: v for k, v in shapes.items() if not (filtered and privacy == "exclude" and k.startswith("vae_"))}
    assert {k: v["__array__"] for k, v in dxo["data"].items()} == sent, path
    assert set(dxo["meta"]) <= WEIGHT_META | (FILTER_META[privacy] if filtered else set()), path
    assert dxo["meta"].get("filter_history") == (FILTERS[privacy] if filtered else None), path
    assert set(dxo["meta"].get("initial_metrics", {})) <= SCORES, path  # no per-case values during training


def check_scores(path, dxo, site):
    assert dxo["kind"] == "METRICS" and set(dxo["data"]) == SCORES | {"split", PER_CASE}, path
    assert not dxo["meta"], path
    scores = dxo["data"]
    assert scores[N_CASES] == CASES[site][scores["split"]], path  # this site's own cases
    per_case = scores[PER_CASE]
    assert set(per_case) == set(SCORE_METRICS), path
    for values in per_case.values():
        assert len(values) == scores[N_CASES] and all(isinstance(x, float) for x in values), path
        assert values == sorted(values), f"{path}: per-case values in an order that may be the cases' order"


@pytest.mark.parametrize("privacy", ["none", "svt", "exclude"])
def test_a_site_sends_only_weights_scores_counts_and_rounds(tmp_path, privacy):
    tmp = str(tmp_path)
    site_data = tiny_sites(tmp, [SIZES[s] for s in SITES])
    recorded = os.path.join(tmp, "recorded")
    run_probe_job(tmp, probe_job(tmp, {"num_rounds": 2, "privacy": privacy}, record_to=recorded), site_data)

    shapes = {k: list(v.shape) for k, v in build_model(TrainSettings.from_dict(TINY_TRAINING)).state_dict().items()}
    secrets = {"Case_", ".nii", "datalist", tmp}
    for data in site_data.values():
        secrets |= {data["data_root"], os.path.basename(data["data_root"]), data["datalist"]}
    tasks = {}
    for path, record in records(recorded, "sent"):
        site, task = record["site"], record["task"]
        tasks.setdefault(task, []).append(site)
        shareable = record["shareable"]
        assert set(shareable) == {"__headers__", "DXO"}, path
        dxo = shareable["DXO"]
        if task in ("train", "submit_model"):
            check_weights(path, dxo, task, privacy, shapes)
        else:
            check_scores(path, dxo, site)
        for where, leaf in leaves(shareable):
            if isinstance(leaf, dict):  # an array: only the model's tensors travel
                assert where[:2] == ("DXO", "data") and where[2] in shapes, (path, where)
            elif isinstance(leaf, str):
                assert not [s for s in secrets if s in leaf] and os.sep not in leaf, (path, where, leaf)
        raw = open(path[: -len(".json")] + ".fobs", "rb").read()
        assert not [s for s in secrets if s.encode() in raw], path

    log = open(simulator_log(os.path.join(tmp, "sim"))).read()
    assert all(f"Contribution from {site} ACCEPTED by the aggregator at round 1" in log for site in SITES)
    expected = {"train", "validate_global", "validate"} | ({"submit_model"} if privacy == "none" else set())
    assert set(tasks) == expected
    assert sorted(tasks["train"]) == sorted(SITES * 2) and sorted(tasks["validate_global"]) == sorted(SITES)

    # the models a site scores in the cross-site evaluation: the other sites' only without a privacy filter
    owners = {}
    for _, record in records(recorded, "received"):
        if record["task"] == "validate":
            owner = record["shareable"]["__headers__"]["_model_owner_"]  # AppConstants.MODEL_OWNER
            owners.setdefault(record["site"], set()).add(owner)
    servers = {"SRV_FL_global_model.pt", "SRV_best_FL_global_model.pt"}
    for site in SITES:
        assert owners[site] == (servers | set(SITES) if privacy == "none" else servers), (site, owners[site])

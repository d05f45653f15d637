"""What leaves a site: every result the sites send in a real tiny run, recorded where it arrives at the server.

A result may hold model weights (or their differences) of the model's own tensors and shapes, Dice and HD95
metrics (per case as unnamed numbers in evaluations), case and step counts, round numbers and FLARE's own
headers; never image data, labels, file paths, case identifiers or the name of a data root. Run with no
privacy filter, with SVT and with the VAE branch excluded (with a filter the sites send weight differences
and their local models stay at the sites).
"""

import glob
import json
import os

import pytest
from builders import TINY_TRAINING
from probe_jobs import SITES, probe_job, run_probe_job, tiny_sites

from fedbrats.runners.simulate import simulator_log
from fedbrats.runtime.constants import DICE_METRICS, HD95_METRICS, PER_CASE
from fedbrats.runtime.model import build_model
from fedbrats.runtime.settings import TrainSettings

pytestmark = pytest.mark.slow


METRICS = set(DICE_METRICS) | set(HD95_METRICS) | {"mean_dice", "n_cases"}
WEIGHT_META = {"NUM_STEPS_CURRENT_ROUND", "initial_metrics", "round"}
FILTER_META = {"svt": {"filter_history", "svt_privacy_budget", "svt_privacy_accountant"}, "exclude": {"filter_history"}}
FILTERS = {"svt": ["SVTPrivacy"], "exclude": ["ExcludeVars"]}


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


@pytest.mark.parametrize("privacy", ["none", "svt", "exclude"])
def test_a_site_sends_only_weights_metrics_counts_and_rounds(tmp_path, privacy):
    tmp = str(tmp_path)
    site_data = tiny_sites(tmp)
    recorded = os.path.join(tmp, "recorded")
    run_probe_job(tmp, probe_job(tmp, {"num_rounds": 1, "privacy": privacy}, record_to=recorded), site_data)

    shapes = {k: list(v.shape) for k, v in build_model(TrainSettings.from_dict(TINY_TRAINING)).state_dict().items()}
    secrets = {"Case_", ".nii", "datalist", tmp}
    for data in site_data.values():
        secrets |= {data["data_root"], os.path.basename(data["data_root"]), data["datalist"]}
    tasks = {}
    for path in sorted(glob.glob(os.path.join(recorded, "*.json"))):
        record = json.load(open(path))
        tasks.setdefault(record["task"], set()).add(record["site"])
        result = record["result"]
        assert set(result) == {"__headers__", "DXO"}, path
        dxo = result["DXO"]
        if record["task"] in ("train", "submit_model"):
            filtered = privacy != "none" and record["task"] == "train"
            assert dxo["kind"] == ("WEIGHT_DIFF" if filtered else "WEIGHTS"), path
            sent = {k: v for k, v in shapes.items() if not (filtered and privacy == "exclude" and k.startswith("vae_"))}
            assert {k: v["__array__"] for k, v in dxo["data"].items()} == sent, path
            assert set(dxo["meta"]) <= WEIGHT_META | (FILTER_META[privacy] if filtered else set())
            assert dxo["meta"].get("filter_history") == (FILTERS[privacy] if filtered else None)
            assert set(dxo["meta"].get("initial_metrics", {})) <= METRICS
        else:
            assert dxo["kind"] == "METRICS" and set(dxo["data"]) == METRICS | {"split", PER_CASE}, path
            per_case = dxo["data"][PER_CASE]  # numbers in case order, no names
            assert set(per_case) == set(DICE_METRICS) | set(HD95_METRICS), path
            n_cases = dxo["data"]["n_cases"]
            assert all(len(v) == n_cases and all(isinstance(x, float) for x in v) for v in per_case.values()), path
        for where, leaf in leaves(result):
            if isinstance(leaf, dict):  # an array: only the model's tensors travel
                assert where[:2] == ("DXO", "data") and where[2] in shapes, (path, where)
            elif isinstance(leaf, str):
                assert not [s for s in secrets if s in leaf] and os.sep not in leaf, (path, where, leaf)
        raw = open(path[: -len(".json")] + ".fobs", "rb").read()
        assert not [s for s in secrets if s.encode() in raw], path

    log = open(simulator_log(os.path.join(tmp, "sim"))).read()
    assert all(f"Contribution from {site} ACCEPTED by the aggregator at round 0" in log for site in SITES)
    expected = {"train", "validate_global", "validate"} | ({"submit_model"} if privacy == "none" else set())
    assert set(tasks) == expected and all(sites == set(SITES) for sites in tasks.values())

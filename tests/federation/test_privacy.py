"""Privacy options of a job and a site keeping its own values of the tensors it never sends."""

import numpy as np
import torch
from builders import TINY_TRAINING
from nvflare.apis.dxo import DXO, DataKind
from nvflare.apis.fl_context import FLContext

from fedbrats.federation.privacy import PRIVACY_DEFAULTS, kept_at_sites, privacy_arguments, privacy_filter
from fedbrats.research.privacy_cost import cost_lines
from fedbrats.runtime.engine import SegmentationEngine
from fedbrats.runtime.fl.executor import BratsExecutor
from fedbrats.runtime.fl.site_algorithms import site_method
from fedbrats.runtime.settings import TrainSettings


def test_filter_arguments_are_the_defaults_with_the_jobs_values_over_them():
    assert privacy_arguments("none") == {} and privacy_filter("none") is None
    assert privacy_arguments("svt", {"epsilon": 0.01}) == {**PRIVACY_DEFAULTS["svt"], "epsilon": 0.01}
    svt = privacy_filter("svt", {"epsilon": 0.01})
    assert (svt.fraction, svt.epsilon, svt.noise_var, svt.gamma) == (0.9, 0.01, 1.0, 1e-4)
    assert kept_at_sites("svt") == "" and kept_at_sites("exclude") == "^vae_"
    assert kept_at_sites("exclude", {"exclude_vars": "^conv_final"}) == "^conv_final"


def test_a_site_trains_from_its_own_values_of_the_tensors_it_keeps():
    executor = BratsExecutor(training=TINY_TRAINING, local_vars="^vae_")
    executor.engine = SegmentationEngine(TrainSettings.from_dict(TINY_TRAINING), torch.device("cpu"))
    executor.method = site_method("fedavg")
    local = executor.engine.get_weights()
    global_model = {k: np.full(v.shape, 0.25, np.float32) for k, v in local.items()}
    shareable = DXO(DataKind.WEIGHTS, data=global_model).to_shareable()
    assert executor._receive(shareable, FLContext(), training=True) is not None
    after = executor.engine.get_weights()
    kept = [k for k in after if k.startswith("vae_")]
    assert kept and all(torch.equal(after[k], local[k]) for k in kept)
    assert all(bool((after[k] == 0.25).all()) for k in after if k not in kept)
    executor._receive(shareable, FLContext())  # a model to evaluate is taken whole
    assert all(bool((v == 0.25).all()) for v in executor.engine.get_weights().values())


def test_the_utility_cost_table_compares_each_model_with_and_without_the_filter():
    def arm(mean):
        site = {"dice_tc": mean, "dice_wt": mean, "dice_et": mean, "mean_dice": mean, "n_cases": 4}
        model = {"sites": {"site-1": site, "site-2": site}, "average": {**site, "n_cases": 8}}
        return {"models": {"final": model, "best": model}}

    cost = {
        "command": "fedbrats privacy-cost --privacy svt",
        "privacy": "svt",
        "privacy_args": PRIVACY_DEFAULTS["svt"],
        "steps": 600,
        "rounds": 10,
        "cases_per_site": 24,
        "seed": 0,
        "sites": {"site-1": "HGG", "site-2": "LGG"},
        "arms": {"fedavg": arm(0.55), "fedavg-svt": arm(0.5)},
        "arm_minutes": 30.0,
    }
    lines = cost_lines(cost)
    assert "| fedavg-svt | final | 0.5000 | 0.5000 | 0.5000 | 0.5000 | 0.5000 | - | - | 0.5000 |" in lines
    assert lines[-2:] == ["| final | 0.5500 | 0.5000 | -0.0500 |", "| best | 0.5500 | 0.5000 | -0.0500 |"]

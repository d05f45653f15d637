"""Guards on model updates: the pure checks, and the server's aggregator refusing a site's contribution."""

import logging

import numpy as np
import pytest
import torch
from nvflare.apis.dxo import DXO, DataKind, MetaKey, from_shareable
from nvflare.apis.event_type import EventType
from nvflare.apis.fl_constant import ReservedKey, ReturnCode
from nvflare.apis.fl_context import FLContext
from nvflare.apis.shareable import make_reply
from nvflare.app_common.abstract.model import make_model_learnable
from nvflare.app_common.app_constant import AppConstants
from nvflare.app_common.app_event_type import AppEventType

from fedbrats.runtime.fl.guarded_aggregator import GuardedAggregator
from fedbrats.runtime.update_guards import nonfinite_tensors, update_problems

GLOBAL = {"conv.weight": np.ones((2, 3), np.float32), "conv.bias": np.zeros(2, np.float32), "vae.w": np.ones(4)}
SHAPES = {k: v.shape for k, v in GLOBAL.items()}


def with_nan(weights, key):
    out = {k: np.array(v, dtype=np.float32) for k, v in weights.items()}
    out[key].flat[0] = np.nan
    return out


def test_a_sound_update_has_no_problems():
    assert update_problems(GLOBAL, SHAPES) == []
    assert update_problems({k: torch.as_tensor(v) for k, v in GLOBAL.items()}, SHAPES) == []
    assert nonfinite_tensors(GLOBAL) == []


def test_every_problem_is_named_with_its_tensors():
    bad = with_nan(GLOBAL, "conv.bias")
    bad["conv.weight"] = np.full((3, 3), np.inf, np.float32)
    bad["head.weight"] = np.ones(1)
    del bad["vae.w"]
    problems = update_problems(bad, SHAPES)
    assert problems == [
        "1 of the model's 3 tensors missing: vae.w",
        "1 tensors the model does not have: head.weight",
        "1 tensors of the wrong shape: conv.weight (3, 3) instead of (2, 3)",
        "2 of 3 tensors hold NaN or Inf: conv.bias, conv.weight",
    ]


def test_non_finite_tensors_are_found_in_numpy_and_torch():
    assert nonfinite_tensors(with_nan(GLOBAL, "vae.w")) == ["vae.w"]
    assert nonfinite_tensors({"a": torch.tensor([1.0, float("-inf")]), "b": torch.zeros(2)}) == ["a"]
    assert update_problems(with_nan(GLOBAL, "vae.w")) == ["1 of 3 tensors hold NaN or Inf: vae.w"]


def test_long_lists_are_cut_and_empty_or_odd_updates_refused():
    many = {f"t{i:02d}": np.full(1, np.nan) for i in range(8)}
    assert update_problems(many) == ["8 of 8 tensors hold NaN or Inf: t00, t01, t02, t03, t04 and 3 more"]
    assert update_problems({}) == ["it holds no weights"]
    assert update_problems(None) == ["it holds no weights"]
    assert update_problems({"a": "text"}) == ["1 entries that are not numeric tensors: a"]


def test_tensors_kept_at_the_sites_may_be_missing():
    partial = {k: v for k, v in GLOBAL.items() if not k.startswith("vae")}
    assert update_problems(partial, SHAPES, allowed_missing="^vae") == []
    assert update_problems(partial, SHAPES) == ["1 of the model's 3 tensors missing: vae.w"]


def contribution(site, weights, round_=0, kind=DataKind.WEIGHTS):
    shareable = DXO(kind, data=weights, meta={MetaKey.NUM_STEPS_CURRENT_ROUND: 2}).to_shareable()
    shareable.set_peer_props({ReservedKey.IDENTITY_NAME: site})
    shareable.add_cookie(AppConstants.CONTRIBUTION_ROUND, round_)
    return shareable


@pytest.fixture
def round_started():
    """A GuardedAggregator at round 0 of a job whose global model is GLOBAL, and its FLContext."""

    def start(min_clients=1, **kwargs):
        aggregator = GuardedAggregator(min_clients=min_clients, expected_data_kind=DataKind.WEIGHTS, **kwargs)
        fl_ctx = FLContext()
        fl_ctx.set_prop(AppConstants.CURRENT_ROUND, 0, private=True, sticky=False)
        fl_ctx.set_prop(AppConstants.GLOBAL_MODEL, make_model_learnable(GLOBAL, {}), private=True, sticky=False)
        aggregator.handle_event(EventType.START_RUN, fl_ctx)
        aggregator.handle_event(AppEventType.ROUND_STARTED, fl_ctx)
        return aggregator, fl_ctx

    return start


def test_server_refuses_bad_contributions_names_the_site_and_averages_the_rest(round_started, caplog):
    aggregator, fl_ctx = round_started(min_clients=1)
    good = {k: v * 3 for k, v in GLOBAL.items()}
    wrong_shape = {**GLOBAL, "conv.weight": np.ones((5, 5), np.float32)}
    caplog.set_level(logging.INFO)
    assert aggregator.accept(contribution("site-1", good), fl_ctx)
    assert not aggregator.accept(contribution("site-2", with_nan(GLOBAL, "conv.bias")), fl_ctx)
    assert not aggregator.accept(contribution("site-3", wrong_shape), fl_ctx)
    assert not aggregator.accept(contribution("site-4", {"conv.weight": GLOBAL["conv.weight"]}), fl_ctx)
    log = caplog.text
    assert "refused the update of site-2 at round 0: 1 of 3 tensors hold NaN or Inf: conv.bias" in log
    assert "refused the update of site-3 at round 0: 1 tensors of the wrong shape: conv.weight (5, 5)" in log
    assert "refused the update of site-4 at round 0: 2 of the model's 3 tensors missing: conv.bias, vae.w" in log
    result = from_shareable(aggregator.aggregate(fl_ctx))
    assert set(result.data) == set(GLOBAL)
    for k, v in result.data.items():
        np.testing.assert_allclose(v, good[k])
    assert "averaging site-1; refused: site-2" in caplog.text


def test_a_round_with_fewer_accepted_sites_than_min_clients_stops(round_started):
    aggregator, fl_ctx = round_started(min_clients=2)
    assert aggregator.accept(contribution("site-1", GLOBAL), fl_ctx)
    assert not aggregator.accept(contribution("site-2", with_nan(GLOBAL, "vae.w")), fl_ctx)
    stops = r"1 update\(s\) accepted \(site-1\), fewer than min_clients 2; refused: site-2"
    with pytest.raises(RuntimeError, match=stops):
        aggregator.aggregate(fl_ctx)


def test_error_replies_and_kept_tensors_are_left_to_flare(round_started):
    aggregator, fl_ctx = round_started(min_clients=1, allowed_missing="^vae")
    error = make_reply(ReturnCode.EXECUTION_RESULT_ERROR)
    error.set_peer_props({ReservedKey.IDENTITY_NAME: "site-2"})
    assert not aggregator.accept(error, fl_ctx)
    partial = {k: v for k, v in GLOBAL.items() if k != "vae.w"}
    assert aggregator.accept(contribution("site-1", partial), fl_ctx)

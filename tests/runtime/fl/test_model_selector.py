"""The case-weighted in-time selection of the best global model: only rounds every expected site scored are
candidates, and rounds scored by different sets of sites are not compared."""

import json
from unittest.mock import MagicMock

import pytest
from nvflare.apis.event_type import EventType
from nvflare.apis.fl_constant import FLContextKey, ReservedKey
from nvflare.apis.fl_context import FLContext
from nvflare.app_common.app_constant import AppConstants
from nvflare.app_common.app_event_type import AppEventType

from fedbrats.runtime.fl.model_selector import ABORTED, POLICY_VIOLATION, SELECTION_FILE, CaseWeightedModelSelector

SITES = ("site-1", "site-2", "site-3")


@pytest.fixture
def selector(tmp_path):
    """A selector that heard the job start with three sites; its context and selection file."""
    engine = MagicMock()
    engine.get_workspace.return_value.get_app_dir.return_value = str(tmp_path)
    engine.get_clients.return_value = [MagicMock() for _ in SITES]
    for client, name in zip(engine.get_clients.return_value, SITES):
        client.name = name
    fl_ctx = FLContext()
    fl_ctx.set_prop(ReservedKey.ENGINE, engine, private=True, sticky=False)
    selector = CaseWeightedModelSelector()
    selector.fire_event = MagicMock()
    selector.handle_event(EventType.START_RUN, fl_ctx)
    return selector, fl_ctx, tmp_path / SELECTION_FILE


def scores(value, sites=SITES):
    return {s: (value, 2) for s in sites}


def test_a_round_some_site_did_not_score_is_no_candidate(selector):
    selector, fl_ctx, path = selector
    assert selector.score_model(1, scores(0.5), fl_ctx)
    assert not selector.score_model(2, scores(0.9, SITES[:2]), fl_ctx)  # higher, but over two sites of three
    assert selector.score_model(3, scores(0.6), fl_ctx)
    selection = json.load(open(path))
    assert (selection["best_round"], selection["best_score"]) == (3, pytest.approx(0.6))
    assert [h["complete"] for h in selection["history"]] == [True, False, True]
    assert selection["best_sites"] == list(SITES)


def test_after_a_site_is_lost_the_selection_starts_again_on_the_others(selector):
    selector, fl_ctx, path = selector
    assert selector.score_model(1, scores(0.7), fl_ctx)
    fl_ctx.set_prop(FLContextKey.DISCONNECTED_CLIENT_NAME, "site-3", private=True, sticky=False)
    selector.handle_event(EventType.CLIENT_DISCONNECTED, fl_ctx)
    assert selector.score_model(2, scores(0.4, SITES[:2]), fl_ctx)  # not comparable with round 1: a new start
    assert not selector.score_model(3, scores(0.3, SITES[:2]), fl_ctx)
    assert selector.score_model(4, scores(0.5, SITES[:2]), fl_ctx)
    selection = json.load(open(path))
    assert (selection["best_round"], selection["best_sites"]) == (4, ["site-1", "site-2"])
    assert selection["lost"] == {"site-3": 1} and all(h["complete"] for h in selection["history"])


def test_every_scored_round_records_when_its_global_model_was_made(selector, monkeypatch):
    selector, fl_ctx, path = selector
    clock = iter([100.0, 130.0, 145.0])
    monkeypatch.setattr("fedbrats.runtime.fl.model_selector.time.time", lambda: next(clock))
    selector.handle_event(EventType.START_RUN, fl_ctx)  # the run starts at 100 s
    fl_ctx.set_prop(AppConstants.CURRENT_ROUND, 0, private=True, sticky=True)
    selector.handle_event(AppEventType.ROUND_DONE, fl_ctx)  # round 0 ends at 130 s: round 1's model
    selector.score_model(1, scores(0.5), fl_ctx)
    selector.score_model(2, scores(0.6), fl_ctx)  # no round end heard: the time it is scored, 145 s
    history = json.load(open(path))["history"]
    assert [h["seconds"] for h in history] == [30.0, 45.0]
    assert set(history[0]) == {"round", "score", "sites", "complete", "seconds"}


def test_an_abort_for_too_few_live_sites_is_recorded_with_its_round_and_reason(selector):
    selector, fl_ctx, path = selector
    selector.record_run_state("/srv/run_state/job-1", "brats_fedavg_demo", 3, fl_ctx)
    fl_ctx.set_prop(FLContextKey.JOB_META, {"min_clients": 3}, private=True, sticky=False)
    fl_ctx.set_prop(AppConstants.CURRENT_ROUND, 0, private=True, sticky=False)
    selector.handle_event(AppEventType.ROUND_STARTED, fl_ctx)
    selector.handle_event(AppEventType.ROUND_DONE, fl_ctx)
    fl_ctx.set_prop(AppConstants.CURRENT_ROUND, 1, private=True, sticky=False)
    selector.handle_event(AppEventType.ROUND_STARTED, fl_ctx)
    fl_ctx.set_prop(FLContextKey.DISCONNECTED_CLIENT_NAME, "site-3", private=True, sticky=False)
    selector.handle_event(EventType.CLIENT_DISCONNECTED, fl_ctx)
    # FLARE's system_panic when the live sites fall below min_clients, then the workflow seeing the abort signal
    fl_ctx.set_prop(FLContextKey.EVENT_DATA, POLICY_VIOLATION, private=True, sticky=False)
    selector.handle_event(EventType.FATAL_SYSTEM_ERROR, fl_ctx)
    selector.record_abort(fl_ctx)
    selection = json.load(open(path))
    assert selection["aborted"] == {
        "round": 2,
        "rounds_done": 1,
        "planned": 3,
        "reason": "alive sites 2 < required min_clients 3 (site-3 lost)",
    }
    assert selection["run_state"] == {"folder": "/srv/run_state/job-1", "job": "brats_fedavg_demo", "planned": 3}
    assert selection["lost"] == {"site-3": 2}


def test_an_abort_without_a_reason_takes_the_fatal_error_that_follows(selector):
    selector, fl_ctx, path = selector
    selector.record_abort(fl_ctx)
    assert json.load(open(path))["aborted"]["reason"] == ABORTED
    fl_ctx.set_prop(FLContextKey.EVENT_DATA, "Result from site-2 is bad", private=True, sticky=False)
    selector.handle_event(EventType.FATAL_SYSTEM_ERROR, fl_ctx)
    selector.record_abort(fl_ctx, "another reason")
    assert json.load(open(path))["aborted"] == {
        "round": 1,
        "rounds_done": 0,
        "planned": None,
        "reason": "Result from site-2 is bad",
    }

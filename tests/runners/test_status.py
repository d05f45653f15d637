"""``fedbrats status``: the figures of a running job from given server replies, the one-line failures, and a live POC
job seen through FLARE's admin API."""

import contextlib
import json
import time
from types import SimpleNamespace

import pytest

from fedbrats.cli import main
from fedbrats.runners import status
from fedbrats.runners.poc import PocSystem
from fedbrats.runners.status import (
    dice_rounds,
    format_status,
    round_seconds,
    seconds_left,
    summarize,
)

JOB = "5f0c7a10-0000-4000-8000-000000000001"
SITES = ["site-1", "site-2"]


def site_metrics(round_, site, cases, tc, wt, et):
    return {"round": round_, "site": site, "n_cases": cases, "dice_tc": tc, "dice_wt": wt, "dice_et": et,
            "mean_dice": (tc + wt + et) / 3}  # fmt: skip


def history_entry(round_, score, cases=None, seconds=None):
    cases = cases or {"site-1": 1, "site-2": 3}
    sites = {s: {"mean_dice": score, "n_cases": n} for s, n in cases.items()}
    return {"round": round_, "score": score, "sites": sites, "complete": True, "seconds": seconds}


def raw_reply(**ours):
    """Server replies in the middle of round 3 of 6 (two rounds done), as FLARE 2.9 gives them."""
    fedbrats = {
        "server_time": 1000.0,
        "run_seconds": 64.0,
        "planned_rounds": 6,
        "rounds_done": 2,
        "rounds": [
            {"round": 0, "start": 0.0, "end": 30.0},
            {"round": 1, "start": 30.5, "end": 50.0},
            {"round": 2, "start": 50.5},
        ],
        "site_metrics": [site_metrics(1, "site-1", 1, 0.2, 0.6, 0.1), site_metrics(1, "site-2", 3, 0.6, 0.8, 0.5)],
        "selection": {
            "best_round": 1,
            "best_score": 0.5,
            "history": [history_entry(1, 0.5, seconds=30.0)],
            "participants": SITES,
            "lost": {},
            "stopped": None,
        },
        **ours,
    }
    return {
        "job_id": JOB,
        "meta": {
            "job_id": JOB,
            "name": "brats_fedavg_demo",
            "status": "RUNNING",
            "start_time": "1970-01-01T00:15:00+00:00",  # 100 s before the server's time
            "deploy_map": {"app": ["@ALL"]},
        },
        "stats": {
            "server": {
                "ScoredScatterAndGather": {"phase": "train", "current_round": 2, "num_rounds": 6, "tasks": {}},
                "fedbrats": fedbrats,
                "ServerRunner": {"job_id": JOB, "status": "started", "workflow": "fedavg"},
            }
        },
        "system": {
            "clients": [
                {"client_name": "site-1", "client_last_conn_time": 996.0},
                {"client_name": "site-2", "client_last_conn_time": 991.5},
            ]
        },
        "client_status": [
            {"client_name": "site-1", "job_id": JOB, "status": "started"},
            {"client_name": "site-2", "job_id": JOB, "status": "started"},
        ],
        "now": 5000.0,  # this machine's clock: the server's time is used where the server gives it
    }


def test_dice_of_a_round_is_weighted_by_the_sites_validation_cases():
    (row,) = dice_rounds(raw_reply()["stats"]["server"]["fedbrats"])
    assert row["round"] == 1 and row["sites"] == SITES and row["cases"] == 4 and row["complete"] is True
    assert row["dice_tc"] == pytest.approx((0.2 + 3 * 0.6) / 4)
    assert row["dice_wt"] == pytest.approx((0.6 + 3 * 0.8) / 4)
    assert row["dice_et"] == pytest.approx((0.1 + 3 * 0.5) / 4)
    assert row["mean_dice"] == pytest.approx((row["dice_tc"] + row["dice_wt"] + row["dice_et"]) / 3)


def test_a_round_is_shown_once_every_site_of_it_is_in():
    ours = raw_reply()["stats"]["server"]["fedbrats"]
    ours["site_metrics"].append(site_metrics(2, "site-1", 1, 0.3, 0.7, 0.2))  # site-2's is still to come
    assert [r["round"] for r in dice_rounds(ours)] == [1]
    del ours["selection"]  # no model selector on the server: the rounds done
    assert [(r["round"], r["cases"]) for r in dice_rounds(ours)] == [(1, 4)]


def test_a_round_without_the_sites_regions_keeps_the_selections_mean():
    ours = {"selection": {"history": [history_entry(4, 0.61), history_entry(5, 0.64)]}, "site_metrics": []}
    rows = dice_rounds(ours)
    assert [r["round"] for r in rows] == [4, 5] and rows[1]["mean_dice"] == 0.64 and rows[1]["cases"] == 4
    assert rows[1]["dice_tc"] is None and rows[1]["dice_et"] is None


def test_time_per_round_leaves_out_the_start_up_round_once_others_are_done():
    rounds = [{"round": 0, "start": 0, "end": 30}, {"round": 1, "start": 31, "end": 40}]
    assert round_seconds({"rounds": rounds[:1]}) == 30  # the only round done
    assert round_seconds({"rounds": rounds + [{"round": 2, "start": 41, "end": 52}]}) == pytest.approx(10.5)
    starts = [0, 30, 80, 90, 100, 110, 120]  # round 1 took 50 s, the recent ones 10 s
    many = [{"round": r, "start": t, "end": t + 9.5} for r, t in enumerate(starts)]
    assert round_seconds({"rounds": many}) == pytest.approx(10)


def test_time_per_round_from_the_selection_or_the_jobs_time_without_round_times():
    history = [history_entry(1, 0.4, seconds=20.0), history_entry(2, 0.5, seconds=28.0)]
    assert round_seconds({"selection": {"history": history + [history_entry(4, 0.6, seconds=44.0)]}}) == 8
    assert round_seconds({"selection": {"history": history[:1]}}) == 20
    assert round_seconds({}, done=4, job_seconds=100.0) == 25
    assert round_seconds({}) is None


def test_time_left_counts_the_rest_of_the_current_round():
    assert seconds_left(10.0, 3, 4.0) == pytest.approx(26)
    assert seconds_left(10.0, 3, 15.0) == pytest.approx(20)  # the current round is late: it may end any moment
    assert seconds_left(10.0, 0, None) == 0 and seconds_left(None, 3, 1.0) is None


def test_status_of_a_job_in_training():
    summary = summarize(raw_reply())
    json.dumps(summary)
    assert summary["job"] == {
        "id": JOB,
        "name": "brats_fedavg_demo",
        "status": "RUNNING",
        "submitted": None,
        "seconds": 100.0,
    }
    assert summary["round"] == {"current": 3, "done": 2, "planned": 6} and summary["stage"] == "training"
    assert [(s["site"], s["connected"], s["last_heard"], s["job"]) for s in summary["sites"]] == [
        ("site-1", True, 4.0, "started"),
        ("site-2", True, 8.5, "started"),
    ]
    assert summary["time"]["per_round"] == 20.0  # rounds 0 (start-up) and 1 done: round 1 from its start to round 2's
    assert summary["time"]["left"] == pytest.approx(3 * 20 + (20 - 13.5))  # 13.5 s into round 3, 3 more after it
    text = format_status(summary)
    assert text.splitlines()[:5] == [
        f"job {JOB} (brats_fedavg_demo): RUNNING for 1 min 40 s",
        "round 3 of 6: training (2 done)",
        "sites: 2 of 2 connected",
        "  site-1  last heard 4 s ago, job started",
        "  site-2  last heard 8 s ago, job started",
    ]
    assert "  after 1 round         0.5000  0.7500  0.4000  0.5500   site-1, site-2 (4 cases)" in text
    assert "  best: after 1 round   0.5000" in text
    assert "time per round 20 s; about 1 min 06 s left for 4 rounds" in text


def test_status_of_a_server_without_the_products_figures():
    raw = raw_reply()
    del raw["stats"]["server"]["fedbrats"]
    summary = summarize(raw)
    assert summary["round"] == {"current": 3, "done": 2, "planned": 6} and not summary["reports_selection"]
    assert summary["dice"] == {"last": None, "best": None}
    # this machine's clock without the server's: 5000 - 900 s since the start, over 2 rounds done
    assert summary["job"]["seconds"] == 4100 and summary["time"]["per_round"] == 2050
    text = format_status(summary)
    assert "validation Dice: the server reports none" in text and "  site-2  last heard 1 h 06 min ago" in text


def test_status_of_a_lost_site_and_of_the_cross_site_evaluation():
    raw = raw_reply(rounds_done=6)
    server = raw["stats"]["server"]
    server["fedbrats"]["selection"]["lost"] = {"site-2": 5}
    server["ScoredScatterAndGather"].update(phase="_finished_", current_round=6)
    server["LiveSitesCrossSiteModelEval"] = {"tasks": {"validate": ["site-1"]}}
    server["ServerRunner"]["workflow"] = "cross_site_validate"
    raw["system"]["clients"] = raw["system"]["clients"][:1]
    raw["client_status"] = raw["client_status"][:1]
    summary = summarize(raw)
    assert summary["stage"] == "cross-site evaluation" and summary["time"]["left"] is None
    text = format_status(summary)
    assert "6 of 6 rounds done: cross-site evaluation" in text
    assert "sites: 1 of 2 connected" in text and "  site-2  not connected, given up in round 5" in text


def test_status_of_a_finished_job():
    raw = raw_reply()
    raw["meta"]["status"], raw["stats"] = "FINISHED:COMPLETED", None
    text = format_status(summarize(raw))
    assert text.splitlines()[:2] == [
        f"job {JOB} (brats_fedavg_demo): FINISHED:COMPLETED",
        f"ended; 'nvflare job download {JOB} -o DIR' fetches its result",
    ]


def test_the_round_workflow_reports_round_times_site_dice_and_selection_to_show_stats():
    from nvflare.apis.dxo import DXO, DataKind, MetaKey
    from nvflare.apis.event_type import EventType
    from nvflare.apis.fl_constant import FLContextKey, ReservedKey
    from nvflare.apis.fl_context import FLContext
    from nvflare.app_common.app_constant import AppConstants
    from nvflare.app_common.app_event_type import AppEventType
    from nvflare.widgets.info_collector import GroupInfoCollector, InfoCollector

    from fedbrats.runtime.fl.fedavg import ScoredScatterAndGather
    from fedbrats.runtime.fl.model_selector import CaseWeightedModelSelector

    selector = CaseWeightedModelSelector()
    selector.history, selector.best_round, selector.best_score = [history_entry(1, 0.55)], 1, 0.55
    engine = SimpleNamespace(get_component=lambda name: selector if name == "model_selector" else None)
    workflow = ScoredScatterAndGather(min_clients=2, num_rounds=3)

    def fire(event_type, round_=None, site=None, collector=None, **props):
        ctx = FLContext()
        ctx.put(key=ReservedKey.ENGINE, value=engine, private=True, sticky=False)
        ctx.set_prop(AppConstants.CURRENT_ROUND, round_, private=True, sticky=False)
        ctx.set_prop(InfoCollector.CTX_KEY_STATS_COLLECTOR, collector, private=True, sticky=False)
        for key, value in props.items():
            ctx.set_prop(getattr(FLContextKey, key), value, private=True, sticky=False)
        if site:
            peer = FLContext()
            peer.put(key=ReservedKey.IDENTITY_NAME, value=site, private=True, sticky=False)
            peer.set_prop(FLContextKey.SHAREABLE, props.get("SHAREABLE"), private=True, sticky=False)
            ctx.set_peer_context(peer)
        workflow.handle_event(event_type, ctx)
        return ctx

    def update(metrics):
        return DXO(DataKind.WEIGHTS, data={}, meta={MetaKey.INITIAL_METRICS: metrics}).to_shareable()

    fire(EventType.START_RUN)
    for r in (0, 1):
        fire(AppEventType.ROUND_STARTED, r)
        if r:
            for m in raw_reply()["stats"]["server"]["fedbrats"]["site_metrics"]:
                fire(AppEventType.BEFORE_CONTRIBUTION_ACCEPT, r, m["site"], SHAREABLE=update(m))
            fire(AppEventType.BEFORE_CONTRIBUTION_ACCEPT, r)  # no peer: nothing kept, nothing raised
            fire(AppEventType.BEFORE_CONTRIBUTION_ACCEPT, r, "site-3", SHAREABLE=update({"mean_dice": 0.5}))
        fire(AppEventType.ROUND_DONE, r)
    final = DXO(DataKind.METRICS, data=site_metrics(2, "site-1", 1, 0.3, 0.7, 0.2)).to_shareable()
    fire(EventType.AFTER_TASK_RESULT_FILTER, site="site-1", TASK_NAME="validate_global", TASK_RESULT=final)
    collector = GroupInfoCollector()
    fire(InfoCollector.EVENT_TYPE_GET_STATS, collector=collector)

    ours = collector.info["fedbrats"]
    assert ours["planned_rounds"] == 3 and ours["rounds_done"] == 2
    assert [(r["round"], "end" in r) for r in ours["rounds"]] == [(0, True), (1, True)]
    assert [(m["round"], m["site"], m["n_cases"]) for m in ours["site_metrics"]] == [
        (1, "site-1", 1),
        (1, "site-2", 3),
        (2, "site-1", 1),
    ]
    assert ours["selection"]["best_round"] == 1 and json.loads(json.dumps(collector.info)) == collector.info
    (row,) = dice_rounds(ours)
    assert row["round"] == 1 and row["dice_tc"] == pytest.approx(0.5) and row["cases"] == 4


def test_watch_refreshes_until_the_job_ends(tmp_path, monkeypatch, capsys):
    running, ended = raw_reply(), raw_reply()
    ended["meta"]["status"] = "FINISHED:COMPLETED"
    replies = iter([running, running, ended])
    monkeypatch.setattr(status, "admin_session", lambda kit, timeout: contextlib.nullcontext("session"))
    monkeypatch.setattr(status, "find_job", lambda session, job, where: JOB)
    monkeypatch.setattr(status, "snapshot", lambda session, job: next(replies))
    monkeypatch.setattr(status.time, "sleep", lambda seconds: None)
    assert main(["status", "--startup-kit", str(tmp_path), "--watch", "1", "--json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["job"]["status"] for line in lines] == ["RUNNING", "RUNNING", "FINISHED:COMPLETED"]


def test_no_poc_system_is_a_one_line_failure(tmp_path, capsys):
    with pytest.raises(SystemExit) as done:
        main(["status", "--poc-root", str(tmp_path)])
    assert done.value.code == 2
    assert capsys.readouterr().err == (
        f"fedbrats status: no POC system under {tmp_path} (no poc/*/prod_*/admin@nvidia.com): give --poc-root of a "
        "running 'fedbrats poc', or --startup-kit of an admin's startup kit\n"
    )


def test_a_server_that_does_not_answer_is_a_one_line_failure(tmp_path, capsys):
    poc = PocSystem(str(tmp_path / "poc"), SITES, port=None)  # provisioned on a free port, never started
    poc.prepare()
    started = time.time()
    with pytest.raises(SystemExit) as done:
        main(["status", "--poc-root", poc.root, "--timeout", "2"])
    assert done.value.code == 2 and time.time() - started < 15
    assert capsys.readouterr().err == (
        f"fedbrats status: cannot reach the FLARE server at localhost:{poc.port} within 2 s: is the system running?\n"
    )
    assert poc.our_processes() == []

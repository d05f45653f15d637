import json

import pytest

from fedbrats.evaluation.report import BEST_GLOBAL, FINAL_GLOBAL, build_report, to_markdown, write_report


def metrics(tc, wt, et, n, split="testing"):
    return {
        "dice_tc": tc,
        "dice_wt": wt,
        "dice_et": et,
        "mean_dice": (tc + wt + et) / 3,
        "n_cases": n,
        "split": split,
    }


def reference_results():
    """The published reference run: site-1 (30 cases) and site-2 (12 cases)."""
    return {
        "site-1": {FINAL_GLOBAL: metrics(0.8790, 0.9180, 0.8064, 30), BEST_GLOBAL: metrics(0.8, 0.9, 0.7, 30)},
        "site-2": {FINAL_GLOBAL: metrics(0.6223, 0.8841, 0.5908, 12), BEST_GLOBAL: metrics(0.6, 0.8, 0.5, 12)},
    }


def test_weighted_average_reproduces_the_reference_numbers():
    report = build_report(reference_results(), {"best_round": 4, "history": [{"round": 4}, {"round": 600}]})
    final = report["models"][0]
    assert final["label"] == "global model after 600 rounds"
    ave = final["average"]
    assert ave["dice_tc"] == pytest.approx(0.8057, abs=5e-5)
    assert ave["dice_wt"] == pytest.approx(0.9083, abs=5e-5)
    assert ave["dice_et"] == pytest.approx(0.7448, abs=5e-5)
    assert ave["n_cases"] == 42
    assert report["models"][1]["label"].startswith("global best model (round 4")
    assert report["cases"] == {"site-1": 30, "site-2": 12} and report["split"] == "testing"


def test_unequal_sites_hand_computed():
    results = {
        "site-1": {"site-1": metrics(1.0, 1.0, 1.0, 3)},
        "site-2": {"site-1": metrics(0.0, 0.5, 0.25, 1)},
    }
    row = build_report(results)["models"][2]
    assert row["average"]["dice_tc"] == pytest.approx(3 / 4)
    assert row["average"]["dice_wt"] == pytest.approx((3 + 0.5) / 4)
    assert row["average"]["dice_et"] == pytest.approx((3 + 0.25) / 4)


def test_missing_result_is_shown_and_left_out_of_the_average(tmp_path):
    results = reference_results()
    results["site-2"][BEST_GLOBAL] = {}
    results["site-1"]["site-2"] = metrics(0.5, 0.5, 0.5, 30)
    report = build_report(results)
    best = report["models"][1]
    assert best["sites"]["site-2"] is None
    assert best["average"]["dice_tc"] == pytest.approx(0.8) and best["average"]["n_cases"] == 30
    assert any("SRV_best_FL_global_model.pt on site-2" in w for w in report["warnings"])
    assert any("site-2 on site-2" in w for w in report["warnings"])
    markdown = to_markdown(report)
    assert "| site-2 | missing | missing | missing | missing | - |" in markdown
    path = tmp_path / "cross_site_val" / "cross_val_results.json"
    path.parent.mkdir()
    path.write_text(json.dumps(results))
    written = write_report(str(tmp_path))
    assert json.load(open(tmp_path / "report.json"))["models"][1]["sites"]["site-2"] is None
    assert (tmp_path / "report.md").read_text() == written["markdown"]


def test_a_site_lost_during_the_run_is_named_missing_and_explained():
    history = [
        {"round": 1, "sites": {s: {"mean_dice": 0.5, "n_cases": 1} for s in ("site-1", "site-2", "site-3")}},
        {"round": 2, "sites": {s: {"mean_dice": 0.6, "n_cases": 1} for s in ("site-1", "site-2")}},
    ]
    selection = {
        "best_round": 2,
        "history": history,
        "participants": ["site-1", "site-2", "site-3", "site-4"],
        "lost": {"site-3": 2},
    }
    report = build_report(reference_results(), selection)
    assert report["sites"] == ["site-1", "site-2", "site-3", "site-4"]
    assert report["lost_sites"] == {
        "site-3": {"last_round": 1, "rounds": 2, "disconnected_in_round": 2},
        "site-4": {"last_round": None, "rounds": 2},
    }
    assert all(row["sites"]["site-3"] is None and row["average"]["n_cases"] == 42 for row in report["models"])
    markdown = to_markdown(report)
    assert "**Sites lost during the run:**" in markdown
    assert (
        "- site-3 took part in the job but has no result in the cross-site evaluation: lost during the run (the last "
        "global model it scored was that of round 1 of 2; the server stopped waiting for it in round 2); shown as "
        "missing, not as 0, and left out of every average"
    ) in markdown
    assert "site-4 took part in the job" in markdown and "it scored no global model after round 1" in markdown
    assert "| site-3 | missing | missing | missing | missing | - |" in markdown
    assert build_report(reference_results())["lost_sites"] == {}


def test_no_results_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="cross_val_results.json"):
        write_report(str(tmp_path))


def with_hd95(result, hd95, per_case_dice):
    """``result`` with HD95 per region (mm) and per-case Dice of every region, as the sites send them."""
    n = result["n_cases"]
    out = {**result, "hd95_tc": hd95[0], "hd95_wt": hd95[1], "hd95_et": hd95[2]}
    out["per_case"] = {f"{m}_{r}": list(per_case_dice[:n]) for m in ("dice", "hd95") for r in ("tc", "wt", "et")}
    return out


def write_site_events(app_dir, rounds):
    """TensorBoard events as a site's executor writes them, in ``app_dir/tb_events``."""
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(app_dir / "tb_events"))
    for r in range(rounds):
        writer.add_scalar("global_model/mean_dice", 0.1 + 0.2 * r, r)
        writer.add_scalar("local_model/mean_dice", 0.2 + 0.2 * r, r)
        writer.add_scalar("train/loss", 1.0 - 0.1 * r, r)
    writer.close()


def test_hd95_average_and_pictures_of_a_workspace(tmp_path):
    results = {
        "site-1": {m: with_hd95(metrics(0.8, 0.9, 0.7, 3), (4.0, 2.0, 6.0), (0.6, 0.8, 1.0)) for m in ("a", "b")},
        "site-2": {m: with_hd95(metrics(0.5, 0.7, 0.2, 1), (8.0, 6.0, 373.13), (0.1,)) for m in ("a", "b")},
    }
    results = {site: {FINAL_GLOBAL: r["a"], BEST_GLOBAL: r["b"]} for site, r in results.items()}
    server = tmp_path / "server" / "simulate_job"
    (server / "cross_site_val").mkdir(parents=True)
    (server / "cross_site_val" / "cross_val_results.json").write_text(json.dumps(results))
    site_1 = lambda r: {"site-1": {"mean_dice": 0.4 + 0.1 * r, "n_cases": 3}}  # noqa: E731
    history = [{"round": r, "score": 0.3 + 0.1 * r, "sites": site_1(r)} for r in (1, 2)]
    (server / "global_model_selection.json").write_text(json.dumps({"best_round": 1, "history": history}))
    for site in ("site-1", "site-2"):
        app = tmp_path / site / "simulate_job" / f"app_{site}"
        app.mkdir(parents=True)
        write_site_events(app, rounds=2)
    report = write_report(str(tmp_path), str(tmp_path / "out"))
    ave = report["models"][0]["average"]
    assert ave["hd95_tc"] == pytest.approx((4.0 * 3 + 8.0) / 4) and ave["hd95_et"] == pytest.approx((18 + 373.13) / 4)
    assert report["models"][0]["sites"]["site-1"]["per_case"]["dice_wt"] == [0.6, 0.8, 1.0]
    curves = report["curves"]["sites"]["site-1"]
    assert curves["global"] == [(0, pytest.approx(0.1)), (1, pytest.approx(0.5)), (2, pytest.approx(0.6))]
    assert curves["local"] == [(1, pytest.approx(0.2)), (2, pytest.approx(0.4))] and len(curves["loss"]) == 2
    assert report["figures"] == {
        "heatmap": "report_heatmap.png",
        "curves": "report_curves.png",
        "dice_boxes": "report_dice_boxes.png",
    }
    markdown = (tmp_path / "out" / "report.md").read_text()
    for name in report["figures"].values():
        assert (tmp_path / "out" / name).read_bytes()[:4] == b"\x89PNG" and f"]({name})" in markdown
    assert "| site | TC | WT | ET | mean | HD95 TC (mm) | HD95 WT (mm) | HD95 ET (mm) | cases |" in markdown
    assert "| site-2 | 0.5000 | 0.7000 | 0.2000 | 0.4667 | 8.00 | 6.00 | 373.13 | 1 |" in markdown


def test_results_without_per_case_values_have_no_box_plot(tmp_path):
    path = tmp_path / "cross_site_val" / "cross_val_results.json"
    path.parent.mkdir()
    path.write_text(json.dumps(reference_results()))
    report = write_report(str(path), str(tmp_path / "out"))
    assert report["figures"] == {"heatmap": "report_heatmap.png"}
    assert "HD95" not in report["markdown"] and "![mean Dice, model x site](report_heatmap.png)" in report["markdown"]


def test_any_number_of_sites_in_their_numbers_order(tmp_path):
    cases = {"site-1": 30, "site-2": 12, "site-10": 6}
    dice = {"site-1": 0.9, "site-2": 0.6, "site-10": 0.3}
    results = {s: {m: metrics(d, d, d, cases[s]) for m in (FINAL_GLOBAL, BEST_GLOBAL, *cases)} for s, d in dice.items()}
    report = build_report(results)
    assert report["sites"] == ["site-1", "site-2", "site-10"] and report["cases"] == cases
    assert [r["model"] for r in report["models"]] == [FINAL_GLOBAL, BEST_GLOBAL, "site-1", "site-2", "site-10"]
    assert report["models"][0]["average"]["mean_dice"] == pytest.approx((0.9 * 30 + 0.6 * 12 + 0.3 * 6) / 48)
    markdown = to_markdown(report)
    assert (
        "| model | site-1 | site-2 | site-10 | AVE |" in markdown and "cases per site: site-1 30, site-2 12" in markdown
    )
    path = tmp_path / "cross_site_val" / "cross_val_results.json"
    path.parent.mkdir()
    path.write_text(json.dumps(results))
    assert write_report(str(path), str(tmp_path / "out"))["figures"] == {"heatmap": "report_heatmap.png"}


def test_a_site_whose_evaluation_failed_is_missing_but_not_lost():
    results = reference_results()
    results["site-2"] = {}  # site-2 scored every global model, then every cross-site evaluation of it failed
    history = [
        {"round": r, "sites": {s: {"mean_dice": 0.5, "n_cases": 1} for s in ("site-1", "site-2")}} for r in (1, 2)
    ]
    report = build_report(results, {"best_round": 2, "history": history})
    assert report["lost_sites"] == {}
    assert all(row["sites"]["site-2"] is None for row in report["models"])
    assert not any("lost during the run" in w for w in report["warnings"])


def with_detection(result, sensitivity, specificity):
    """``result`` with sensitivity and specificity per region (TC, WT, ET), as the sites send them."""
    out = dict(result)
    for name, values in (("sensitivity", sensitivity), ("specificity", specificity)):
        out.update({f"{name}_{r}": v for r, v in zip(("tc", "wt", "et"), values)})
    return out


def test_sensitivity_and_specificity_per_site_and_their_average():
    site_1 = with_detection(metrics(0.8, 0.9, 0.7, 3), (0.9, 0.95, 0.6), (0.999, 0.998, 0.9995))
    site_2 = with_detection(metrics(0.5, 0.7, 0.2, 1), (0.5, 0.75, 0.0), (0.995, 0.99, 1.0))
    results = {"site-1": {FINAL_GLOBAL: site_1}, "site-2": {FINAL_GLOBAL: site_2}}
    results["site-1"][BEST_GLOBAL] = metrics(0.8, 0.9, 0.7, 3)  # from a site that does not send them
    results["site-2"][BEST_GLOBAL] = site_2
    report = build_report(results)
    final, best = report["models"][0], report["models"][1]
    assert final["sites"]["site-2"]["sensitivity_wt"] == 0.75 and final["sites"]["site-1"]["specificity_et"] == 0.9995
    ave = final["average"]
    assert ave["sensitivity_tc"] == pytest.approx((0.9 * 3 + 0.5) / 4)
    assert ave["sensitivity_et"] == pytest.approx(1.8 / 4)
    assert ave["specificity_wt"] == pytest.approx((0.998 * 3 + 0.99) / 4)
    assert "sensitivity_tc" not in best["average"] and best["sites"]["site-2"]["sensitivity_tc"] == 0.5
    markdown = to_markdown(report)
    head = (
        "| site | sensitivity TC | sensitivity WT | sensitivity ET | specificity TC | specificity WT | specificity ET "
        "| cases |"
    )
    assert markdown.count(head) == 2  # one table per model
    assert "| site-1 | 0.9000 | 0.9500 | 0.6000 | 0.9990 | 0.9980 | 0.9995 | 3 |" in markdown
    assert "| AVE | 0.8000 | 0.9000 | 0.4500 | 0.9980 | 0.9960 | 0.9996 | 4 |" in markdown
    assert "| site-1 | - | - | - | - | - | - | 3 |" in markdown  # the best model's result without them
    assert "| AVE | - | - | - | - | - | - | 4 |" in markdown
    assert "Sensitivity TP / (TP + FN)" in markdown
    assert "sensitivity" not in to_markdown(build_report(reference_results())).lower()


def aborted_selection(round_=2, rounds_done=1):
    """The selection of a 3-round job of three sites whose site-3 was lost in round 2, when FLARE aborted it."""
    return {
        "best_round": None,
        "history": [],
        "participants": ["site-1", "site-2", "site-3"],
        "lost": {"site-3": 2},
        "aborted": {
            "round": round_,
            "rounds_done": rounds_done,
            "planned": 3,
            "reason": "alive sites 2 < required min_clients 3 (site-3 lost)",
        },
        "run_state": {"folder": "/srv/server/run_state/job-1", "job": "brats_fedavg_demo", "planned": 3},
    }


def test_an_aborted_job_says_when_and_why_names_only_the_lost_site_and_how_to_resume():
    report = build_report({}, aborted_selection(), env="poc")
    assert list(report["lost_sites"]) == ["site-3"] and report["models"] == []
    assert not any("no result of" in w for w in report["warnings"])
    markdown = to_markdown(report)
    assert (
        "**The job was aborted** in round 2 of 3, after 1 completed round: alive sites 2 < required min_clients 3 "
        "(site-3 lost)."
    ) in markdown
    assert (
        "The cross-site evaluation did not run because the job was aborted: no model has a cross-site result. "
        "site-1 and site-2 were alive until the abort: not lost."
    ) in markdown
    assert (
        "Resume the run from round 2 (the global model of round 1) on the server's machine with `python "
        "jobs/brats_fedavg_demo/job.py --env poc --resume-from /srv/server/run_state/job-1`; to go on without "
        "site-3, add `--sites site-1 site-2 --min-clients 2`"
    ) in markdown
    assert "- site-3 took part in the job" in markdown and "site-1 took part" not in markdown
    assert "Split:" not in markdown and "## Mean Dice" not in markdown
    # where the job ran is not known: the provisioned system's command, and the POC one named
    assert "--env prod --startup-kit KIT --resume-from" in to_markdown(build_report({}, aborted_selection()))


def test_an_abort_before_any_completed_round_cannot_be_resumed():
    report = build_report({}, aborted_selection(round_=1, rounds_done=0))
    assert report["resume"] == "No round was completed, so there is nothing to resume from: submit the job again."
    assert "in round 1 of 3, after 0 completed rounds" in report["ended"]


def test_an_aborted_job_without_cross_site_results_gets_its_report(tmp_path):
    app = tmp_path / "workspace" / "app_server"
    app.mkdir(parents=True)
    selection = aborted_selection()
    del selection["aborted"]  # a selection that heard no abort: the caller's view of the job's end stands in
    (app / "global_model_selection.json").write_text(json.dumps(selection))
    failure = {"round": 2, "rounds_done": 1, "planned": None, "reason": "site-3 reported that its job failed"}
    report = write_report(str(tmp_path), str(tmp_path / "report"), env="poc", failure=failure)
    assert report["ended"].startswith("**The job was aborted** in round 2, after 1 completed round: site-3 reported")
    assert report["figures"] == {} and (tmp_path / "report" / "report.md").read_text() == report["markdown"]
    with pytest.raises(FileNotFoundError):
        write_report(str(tmp_path))  # no results and no abort: not a report

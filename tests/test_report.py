import json

import pytest

from fedbrats.tools.report import BEST_GLOBAL, FINAL_GLOBAL, build_report, to_markdown, write_report


def metrics(tc, wt, et, n, split="testing"):
    return {
        "val_dice_tc": tc,
        "val_dice_wt": wt,
        "val_dice_et": et,
        "val_mean_dice": (tc + wt + et) / 3,
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
    assert ave["TC"] == pytest.approx(0.8057, abs=5e-5)
    assert ave["WT"] == pytest.approx(0.9083, abs=5e-5)
    assert ave["ET"] == pytest.approx(0.7448, abs=5e-5)
    assert ave["n_cases"] == 42
    assert report["models"][1]["label"].startswith("global best model (round 4")
    assert report["cases"] == {"site-1": 30, "site-2": 12} and report["split"] == "testing"


def test_unequal_sites_hand_computed():
    results = {
        "site-1": {"site-1": metrics(1.0, 1.0, 1.0, 3)},
        "site-2": {"site-1": metrics(0.0, 0.5, 0.25, 1)},
    }
    row = build_report(results)["models"][2]
    assert row["average"]["TC"] == pytest.approx(3 / 4)
    assert row["average"]["WT"] == pytest.approx((3 + 0.5) / 4)
    assert row["average"]["ET"] == pytest.approx((3 + 0.25) / 4)


def test_missing_result_is_shown_and_left_out_of_the_average(tmp_path):
    results = reference_results()
    results["site-2"][BEST_GLOBAL] = {}
    results["site-1"]["site-2"] = metrics(0.5, 0.5, 0.5, 30)
    report = build_report(results)
    best = report["models"][1]
    assert best["sites"]["site-2"] is None
    assert best["average"]["TC"] == pytest.approx(0.8) and best["average"]["n_cases"] == 30
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


def test_no_results_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="cross_val_results.json"):
        write_report(str(tmp_path))

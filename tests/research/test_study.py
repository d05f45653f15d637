"""The accuracy study's machinery on a tiny budget: every arm trains, is evaluated and lands in the tables."""

import json
import os

import pytest
import torch
from conftest import REPO

from fedbrats.research.study import ARMS, FINETUNED, run_study, study_data
from fedbrats.research.study_report import MET, MISSED, NOT_SHOWN, site_difference, targets, to_markdown, verdict
from fedbrats.runtime.constants import PER_CASE

TINY = {"crop": [32, 32, 32], "pixdim": 4.0, "init_filters": 8, "sw_roi": [], "batch_size": 1}


def tiny_study(tmp, docs, name="results", arms=ARMS):
    """The study at 4 steps per arm (fine-tuned arms: 2 more) on 4 synthetic cases per site (2 training, 1
    validation) and 2 test cases, its data and arms under ``tmp/out``."""
    return run_study(
        str(tmp / "out"),
        str(tmp / docs),
        cases=4,
        test_cases=2,
        steps=4,
        rounds=1,
        seed=0,
        arms=list(arms),
        command="fedbrats study (test)",
        overrides=TINY,
        name=name,
        fine_tune_steps=2,
    )


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("study")
    result = tiny_study(tmp, "docs")
    return tmp, result


@pytest.mark.slow
def test_every_arm_is_evaluated_on_every_site(study):
    tmp, result = study
    saved = json.load(open(tmp / "docs" / "results.json"))
    assert list(saved["arms"]) == list(ARMS)
    for arm in ARMS:
        for which in ("final", "best"):
            model = saved["arms"][arm]["models"][which]
            assert set(model["sites"]) == {"site-1", "site-2"}
            cases = [r["n_cases"] for r in model["sites"].values()]
            assert cases == [2, 2] and model["average"]["n_cases"] == 4
            expected = sum(r["dice_wt"] * r["n_cases"] for r in model["sites"].values()) / sum(cases)
            assert model["average"]["dice_wt"] == pytest.approx(expected)
        assert saved["arms"][arm]["curve"][-1]["steps"] == (6 if arm.startswith(FINETUNED) else 4)


@pytest.mark.slow
def test_data_of_another_size_is_refused(study):
    tmp, result = study
    assert result["split"] == [2, 1, 2] and result["cases_per_site"] == 5
    datalist = json.load(open(tmp / "out" / "data" / "datalists" / "site-1.json"))
    assert [len(datalist[s]) for s in ("training", "validation", "testing")] == [2, 1, 2]
    with pytest.raises(SystemExit, match=r"split \[2, 1, 2\] and seed 0, not \[2, 1, 3\]"):
        study_data(str(tmp / "out"), cases=4, seed=0, test_cases=3)


@pytest.mark.slow
def test_tables_and_plot_are_written(study):
    tmp, _ = study
    markdown = (tmp / "docs" / "results.md").read_text()
    assert "## Comparison" in markdown and "## Targets" in markdown
    for row in (
        "centralised AVE TC Dice at least 0.70",
        "within 0.03 of centralised",
        "| FedAvg above local-only site-2",
        "| FedAvg fine-tuned at site-2 (2 more steps) above local-only site-2",
    ):
        assert row in markdown
    for arm in ARMS:
        assert f"## {arm}: final model" in markdown and f"## {arm}: best model" in markdown
    png = (tmp / "docs" / "results_curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


@pytest.mark.slow
def test_finished_arms_are_reused(study, capsys):
    tmp, first = study
    again = tiny_study(tmp, "docs2", name="again")
    printed = capsys.readouterr().out
    assert printed.count("finished before, reusing") == len(ARMS)
    for arm in ARMS:
        assert again["arms"][arm]["models"] == first["arms"][arm]["models"]
    assert "![validation Dice against optimiser steps](again_curves.png)" in (tmp / "docs2" / "again.md").read_text()
    assert (tmp / "docs2" / "again.json").is_file() and (tmp / "docs2" / "again_curves.png").is_file()


@pytest.mark.slow
def test_finetuned_arms_start_from_fedavgs_final_global_model(study):
    _, result = study

    def weights(arm):
        return torch.load(result["arms"][arm]["models"]["final"]["path"], weights_only=False)["model"]

    def distance(a, b):
        return sum(float((torch.as_tensor(a[k]) - torch.as_tensor(b[k])).pow(2).sum()) for k in a)

    fedavg = weights("fedavg")
    for site in ("site-1", "site-2"):
        tuned = weights(f"{FINETUNED}-{site}")
        assert 0 < distance(tuned, fedavg) < distance(weights(f"local-{site}"), fedavg) / 4
    assert result["fine_tune"] == {"steps": 2, "learning_rate": 5e-4}


@pytest.mark.slow
def test_a_finetuned_arm_needs_the_fedavg_arm(tmp_path):
    with pytest.raises(SystemExit, match="run the fedavg arm first"):
        tiny_study(tmp_path, "docs", arms=[f"{FINETUNED}-site-2"])


def test_paired_difference_of_two_models_on_the_same_cases():
    def site(tc, wt, et):
        return {
            "n_cases": len(tc),
            PER_CASE: {"dice_tc": tc, "dice_wt": wt, "dice_et": et},
        }  # as site_result names them

    a = site([0.9, 0.6], [0.9, 0.9], [0.6, 0.3])  # case means 0.8 and 0.6
    b = site([0.6, 0.9], [0.9, 0.6], [0.6, 0.6])  # 0.7 and 0.7: differences +0.1 and -0.1
    d = site_difference(a, b)
    assert d["mean"] == pytest.approx(0.0) and d["better"] == 1 and d["cases"] == 2
    assert d["interval_95"] == pytest.approx([-0.1, 0.1])
    assert site_difference(a, None) is None


@pytest.mark.parametrize(
    "interval, threshold, above, expected",
    [
        ([0.01, 0.05], 0.0, True, MET),
        ([-0.05, 0.01], 0.0, True, NOT_SHOWN),
        ([-0.05, -0.01], 0.0, True, MISSED),
        ([-0.01, 0.02], 0.03, False, MET),
        ([0.02, 0.04], 0.03, False, NOT_SHOWN),
        ([0.04, 0.05], 0.03, False, MISSED),
    ],
)
def test_a_verdict_needs_the_whole_interval_on_one_side(interval, threshold, above, expected):
    assert verdict(interval, threshold, above) == expected


@pytest.mark.parametrize("name", ["results", "results-seed-1", "results-1000-steps", "results-2000-steps"])
def test_a_results_page_is_its_json_rendered(name):
    """Every table and verdict of a results page is what the study makes of its recorded results."""
    study = json.load(open(os.path.join(REPO, "docs", f"{name}.json")))
    assert open(os.path.join(REPO, "docs", f"{name}.md")).read() == to_markdown(study, f"{name}_curves.png")


def test_the_targets_of_the_default_study_follow_its_intervals():
    study = json.load(open(os.path.join(REPO, "docs", "results.json")))
    rows = {line.split(" | ")[0].strip("| "): line.rsplit(" | ", 1)[1].strip(" |") for line in targets(study)[2:-2]}
    assert rows["centralised AVE WT Dice at least 0.85"] == MET
    assert rows["FedAvg above local-only site-2 on site-2's test cases"] == NOT_SHOWN  # interval -0.058 to +0.011
    seed_1 = json.load(open(os.path.join(REPO, "docs", "results-seed-1.json")))
    rows = {line.split(" | ")[0].strip("| "): line.rsplit(" | ", 1)[1].strip(" |") for line in targets(seed_1)[2:-2]}
    assert rows["FedAvg above local-only site-2 on site-2's test cases"] == MISSED  # interval -0.055 to -0.005

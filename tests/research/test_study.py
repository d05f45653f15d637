"""The accuracy study's machinery on a tiny budget: every arm trains, is evaluated and lands in the tables; the
benchmarks, the method arms' job values and reuse keys, and the methods' tables on made-up results."""

import argparse
import json
import os

import pytest
import torch
from conftest import REPO

from fedbrats.prepare.site_specs import parse_sites
from fedbrats.prepare.synthetic import synthetic_record
from fedbrats.research import study as study_module
from fedbrats.research import study_arms as arms_module
from fedbrats.research import study_data as data_module
from fedbrats.research.study import arm_names, recipe, route_algorithm_args, run_study
from fedbrats.research.study_arms import DONE_FILE, EVALUATION_VERSION, fingerprint, method_job, run_arm
from fedbrats.research.study_data import HETERO, REFERENCE, Benchmark, benchmark, site_splits, study_data
from fedbrats.research.study_methods import (
    CANNOT_TELL,
    FINETUNED,
    GAINS,
    LOSES,
    convergence_score,
    method_targets,
    own_case_differences,
    who_gains,
)
from fedbrats.research.study_report import targets, to_markdown
from fedbrats.research.study_stats import MET, MISSED, NOT_SHOWN, site_difference, verdict
from fedbrats.runtime.constants import PER_CASE

TINY = {"crop": [32, 32, 32], "pixdim": 4.0, "init_filters": 8, "sw_roi": [], "batch_size": 1}
ARMS = ("central", "fedavg", "finetuned-site-1", "finetuned-site-2", "local-site-1", "local-site-2")
"""The arms of the tiny study: every kind but the methods beyond FedAvg (each one more simulator run)."""


def tiny_study(tmp, docs, name="results", arms=ARMS, **kwargs):
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
        **kwargs,
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


@pytest.mark.parametrize(
    "name",
    [
        "results",
        "results-seed-1",
        "results-1000-steps",
        "results-2000-steps",
        "results-methods",
        "results-methods-seed-1",
        "results-hetero",
        "results-hetero-seed-1",
    ],
)
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


def test_the_benchmarks_sites_arms_and_splits():
    reference, hetero = benchmark(REFERENCE), benchmark(HETERO)
    assert reference.sites == ["site-1", "site-2"] and reference.job == "brats_fedavg_demo"
    assert arm_names(reference.sites) == (
        "central",
        "fedavg",
        "fedprox",
        "fedopt",
        "scaffold",
        "ditto",
        "finetuned-site-1",
        "finetuned-site-2",
        "local-site-1",
        "local-site-2",
    )
    assert site_splits(reference, 24, 12) == {"site-1": (16, 4, 12), "site-2": (16, 4, 12)}
    assert hetero.sites == ["site-1", "site-2", "site-3", "site-4"] and hetero.job == "brats_hetero"
    assert [(s.grade, s.profile, s.cases) for s in hetero.specs] == [
        ("HGG", "reference", 56),
        ("mix", "clinical-1.5t", 34),
        ("LGG", "gain-bias", 22),
        ("mix", "noisy", 12),
    ]
    # each site's own cases (40, 24, 16 and 8 training), the test floor raising every test split
    assert site_splits(hetero, 24) == {
        "site-1": (40, 8, 8),
        "site-2": (24, 5, 5),
        "site-3": (16, 3, 3),
        "site-4": (8, 2, 2),
    }
    assert site_splits(hetero, 24, 12) == {
        "site-1": (40, 8, 12),
        "site-2": (24, 5, 12),
        "site-3": (16, 3, 12),
        "site-4": (8, 2, 12),
    }
    assert arm_names(hetero.sites)[-4:] == ("local-site-1", "local-site-2", "local-site-3", "local-site-4")


def parse(*argv):
    parser = argparse.ArgumentParser()
    study_module.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_the_command_checks_arms_and_budget_against_the_benchmark():
    with pytest.raises(SystemExit, match="no arm local-site-3 in the reference benchmark"):
        study_module.run(parse("--arms", "fedavg", "local-site-3"))
    with pytest.raises(SystemExit, match="--steps must be a multiple of 4 x --rounds"):
        study_module.run(parse("--benchmark", "hetero", "--rounds", "50"))
    with pytest.raises(SystemExit, match="--algorithm-arg gamma"):
        study_module.run(parse("--algorithm-arg", "gamma=1"))


def test_method_arms_run_the_job_with_their_algorithm_and_arguments_in_the_reuse_key():
    assert method_job("fedavg") is None and method_job("central") is None and method_job("local-site-1") is None
    assert method_job("fedprox") == {"algorithm": "fedprox", "algorithm_args": {"mu": 0.01}}
    given = route_algorithm_args(["mu=0.1", "lambda=0.5"])
    assert given == {"fedprox": {"mu": 0.1}, "ditto": {"lambda": 0.5}}
    assert method_job("ditto", given) == {"algorithm": "ditto", "algorithm_args": {"lambda": 0.5}}
    assert method_job("scaffold", given) == {"algorithm": "scaffold", "algorithm_args": {}}
    with pytest.raises(SystemExit, match="mu must be a number"):
        route_algorithm_args(["mu=-1"])


def test_reuse_keys_name_the_evaluation_and_the_benchmarks_data():
    settings = recipe()
    reference = fingerprint(settings, 2500, 50, 50, 24, 0, 12)
    assert EVALUATION_VERSION == 3 and reference["evaluation"] == 3
    assert set(reference) == {"evaluation", "settings", "steps", "rounds", "val_every", "cases", "seed", "split"}
    assert reference == fingerprint(settings, 2500, 50, 50, 24, 0, 12, benchmark(REFERENCE))
    hetero = fingerprint(settings, 2500, 25, 100, 24, 0, 12, benchmark(HETERO))
    assert "cases" not in hetero and hetero["benchmark"] == HETERO
    assert hetero["sites"][1] == "site-2:mix:clinical-1.5t:34" and hetero["splits"]["site-4"] == [8, 2, 12]


def test_a_finished_method_arm_is_reused_only_with_the_same_arguments(tmp_path, monkeypatch, capsys):
    key = fingerprint(recipe(), 4, 1, 4, 4, 0, 2)
    job = method_job("ditto")
    done = {"arm": "ditto", "key": {**key, "job": job}, "models": {}}
    arm_dir = tmp_path / "arms" / "ditto"
    arm_dir.mkdir(parents=True)
    (arm_dir / DONE_FILE).write_text(json.dumps(done))
    assert run_arm("ditto", "", str(tmp_path), recipe(), 4, 1, key, {}, job) == done
    assert "finished before, reusing" in capsys.readouterr().out

    def trains(*args):
        raise RuntimeError("trained again")

    monkeypatch.setattr(arms_module, "federated_arm", trains)
    with pytest.raises(RuntimeError, match="trained again"):
        run_arm("ditto", "", str(tmp_path), recipe(), 4, 1, key, {}, method_job("ditto", {"ditto": {"lambda": 0.5}}))


def test_sites_of_their_own_sizes_are_written_with_a_raised_test_split(tmp_path, monkeypatch):
    written = []

    def write_sites(root, specs, cases, size, seed, split):
        """The generator's datalist and record, without images: one case name per case."""
        (spec,) = specs
        assert spec.cases == 0 and sum(split) == cases  # the site's own split, the generator's one count
        written.append(str(spec))
        bounds = [0, split[0], split[0] + split[1], cases]
        names = [f"{spec.name}-{k}" for k in range(cases)]
        parts = {p: names[bounds[i] : bounds[i + 1]] for i, p in enumerate(("training", "validation", "testing"))}
        os.makedirs(os.path.join(root, "datalists"), exist_ok=True)
        json.dump(parts, open(os.path.join(root, "datalists", f"{spec.name}.json"), "w"))
        record = synthetic_record([spec], cases, size, seed, split=tuple(split))
        json.dump(record, open(os.path.join(root, "synthetic_sites.json"), "w"))

    monkeypatch.setattr(data_module, "write_sites", write_sites)
    bench = Benchmark(HETERO, "brats_hetero", tuple(parse_sites(["site-1:HGG:3", "site-2:LGG:noisy:4"])))
    assert site_splits(bench, 24, 2) == {"site-1": (1, 1, 2), "site-2": (2, 1, 2)}
    root = study_data(str(tmp_path), 24, 0, 2, bench)
    assert written == ["site-1:HGG", "site-2:LGG:noisy"]
    union = json.load(open(os.path.join(root, "datalists", "site-All.json")))
    assert union["testing"] == ["site-1-2", "site-1-3", "site-2-3", "site-2-4"] and len(union["training"]) == 3
    record = json.load(open(os.path.join(root, "synthetic_sites.json")))
    assert record["sites"] == ["site-1:HGG", "site-2:LGG:noisy"] and record["cases"] == {"site-1": 4, "site-2": 5}
    assert record["splits"] == {"site-1": [1, 1, 2], "site-2": [2, 1, 2]}
    assert json.load(open(os.path.join(root, "study_data.json")))["splits"] == record["splits"]
    with pytest.raises(SystemExit, match="holds synthetic data of the sites"):
        study_data(str(tmp_path), 24, 0, 3, bench)
    with pytest.raises(SystemExit, match="holds synthetic data of the sites"):
        study_data(str(tmp_path), 4, 0, 2)  # the reference benchmark's data is not this


@pytest.mark.slow
def test_a_ditto_arm_scores_each_sites_personal_model_on_its_own_cases(tmp_path):
    """A 2-round Ditto arm, 1 step per site a round, on 3 cases per site: 1 training, 1 validation, 1 test."""
    out, docs = str(tmp_path / "out"), str(tmp_path / "docs")
    result = run_study(out, docs, 3, 4, 2, 0, ["ditto"], "fedbrats study (test)", TINY)
    ditto = result["arms"]["ditto"]
    assert ditto["key"]["job"] == {"algorithm": "ditto", "algorithm_args": {"lambda": 0.1}}
    assert [c["steps"] for c in ditto["curve"]] == [2, 4] and 0 < ditto["curve"][0]["seconds"] < ditto["curve"][1][
        "seconds"
    ]
    personal = ditto["personal"]
    for site in ("site-1", "site-2"):
        assert personal["paths"][site].endswith(os.path.join(f"app_{site}", "best_local_model.pt"))
        assert personal["sites"][site]["n_cases"] == 1 and "sensitivity_tc" in personal["sites"][site]
    assert personal["average"]["n_cases"] == 2
    markdown = open(os.path.join(docs, "results.md")).read()
    assert "## ditto: each site's personal model" in markdown and "(twice the site steps)" in markdown
    assert "| Ditto | " in markdown  # the convergence table


def test_convergence_is_the_area_under_the_best_so_far_over_the_runs_length():
    curve = [
        {"steps": 1, "mean_dice": 0.2, "seconds": 10.0},
        {"steps": 2, "mean_dice": 0.6, "seconds": 20.0},
        {"steps": 3, "mean_dice": 0.4, "seconds": 30.0},  # worse: the best so far stays 0.6
        {"steps": 4, "mean_dice": 0.8, "seconds": 40.0},
    ]
    # 0 for 10 s, 0.2 for 10 s, 0.6 for 20 s, over 40 s
    assert convergence_score(curve) == pytest.approx((0.2 * 10 + 0.6 * 20) / 40)
    assert convergence_score([{"steps": 1, "mean_dice": 1.0, "seconds": 1.0}, {**curve[-1], "mean_dice": 1.0}]) == (
        pytest.approx(39 / 40)
    )
    assert convergence_score([{"steps": 1, "mean_dice": 0.5}]) is None  # recorded without times


def case_result(values):
    """A site result whose every case scores ``values[i]`` in every region."""
    mean = sum(values) / len(values)
    return {
        "n_cases": len(values),
        "mean_dice": mean,
        **{m: mean for m in DICE},
        PER_CASE: {m: list(values) for m in DICE},
    }


DICE = ("dice_tc", "dice_wt", "dice_et")


def arm(sites, final, personal=None, job=None):
    """An arm of made-up results: ``final`` (and ``personal``) give each site's case values."""
    models = {w: {"sites": {s: case_result(final[s]) for s in sites}, "average": None} for w in ("final", "best")}
    result = {"models": models, "curve": [], "train_minutes": 1.0, "key": {"job": job} if job else {}}
    if personal:
        result["personal"] = {"sites": {s: case_result(personal[s]) for s in sites}, "average": None}
    return result


def made_up_study(benchmark_name, arms, sites):
    return {
        "command": "fedbrats study (made up)",
        "benchmark": benchmark_name,
        "job": "brats_hetero",
        "settings": {"batch_size": 2, "crop": [32, 32, 32], "pixdim": 3.0, "init_filters": 8, "loss": "dice_bce"}
        | {"learning_rate": 0.002},
        "steps": 2400,
        "rounds": 25 if len(sites) == 4 else 50,
        "seed": 0,
        "sites": sites,
        "arms": arms,
        "arm_minutes": 1.0,
    }


HETERO_SITES = {
    "site-1": {"grade": "HGG", "profile": "reference", "split": [40, 8, 4]},
    "site-2": {"grade": "mix", "profile": "clinical-1.5t", "split": [24, 5, 4]},
    "site-3": {"grade": "LGG", "profile": "gain-bias", "split": [16, 3, 4]},
    "site-4": {"grade": "mix", "profile": "noisy", "split": [8, 2, 4]},
}


def shifted(by):
    """Each hetero site's 4 test cases at 0.5 plus ``by[site]`` (a pair: the first two cases, the last two)."""
    return {s: [0.5 + by[s][0]] * 2 + [0.5 + by[s][1]] * 2 for s in HETERO_SITES}


def hetero_results():
    """Local-only 0.5 everywhere, centralised 0.8. FedAvg's final global model: site-1 and site-4 gain, site-2 loses,
    site-3 cannot tell, 0.25 below centralised; Ditto's personal models gain on every site, its global model is 0.005
    below centralised."""
    sites = list(HETERO_SITES)
    fedavg = {"site-1": (0.05, 0.05), "site-2": (-0.05, -0.05), "site-3": (0.1, -0.1), "site-4": (0.05, 0.05)}
    arms = {
        "central": arm(sites, shifted({s: (0.3, 0.3) for s in sites})),
        "fedavg": arm(sites, shifted(fedavg)),
        "ditto": arm(
            sites,
            shifted({s: (0.295, 0.295) for s in sites}),
            personal=shifted({s: (0.1, 0.05) for s in sites}),
            job={"algorithm": "ditto", "algorithm_args": {"lambda": 0.1}},
        ),
    }
    arms.update({f"local-{s}": arm(sites, shifted({t: (0, 0) for t in sites})) for s in sites})
    arms["central"]["curve"] = [{"steps": 1200, "mean_dice": 0.6, "seconds": 60.0}, {"steps": 2400, "mean_dice": 0.8}]
    arms["central"]["curve"][1]["seconds"] = 120.0
    return made_up_study(HETERO, arms, HETERO_SITES)


def verdicts_of(lines):
    return {line.split(" | ")[0].strip("| "): line.rsplit(" | ", 1)[1].strip(" |") for line in lines if " | " in line}


def test_who_gains_follows_each_sites_interval():
    differences = own_case_differences(hetero_results())
    assert list(differences) == ["fedavg", "ditto"]
    assert differences["fedavg"]["site-3"]["interval_95"] == pytest.approx([-0.1, 0.1])
    table = who_gains(differences)
    assert table["fedavg"] == {GAINS: ["site-1", "site-4"], LOSES: ["site-2"], CANNOT_TELL: ["site-3"]}
    assert table["ditto"] == {GAINS: list(HETERO_SITES), LOSES: [], CANNOT_TELL: []}  # its personal models
    assert who_gains({"fedavg": {"site-1": None}})["fedavg"][CANNOT_TELL] == ["site-1"]


def test_the_methods_targets_on_the_heterogeneous_benchmark():
    rows = verdicts_of(method_targets(hetero_results()))
    a = "(a) {}'s {} model at least as good as local-only on every site's own test cases, above it on site-3 and site-4"
    assert rows[a.format("FedAvg", "final global")] == MISSED  # site-2's interval lies below zero
    assert rows[a.format("Ditto", "best personal")] == MET
    b = "(b) {}'s final global model within 0.01 of centralised's, case by case on every test case"
    assert rows[b.format("FedAvg")] == MISSED and rows[b.format("Ditto")] == MET
    assert rows["(a) and (b) by one method"] == MET
    study = hetero_results()
    study["arms"]["ditto"]["personal"]["sites"]["site-4"] = case_result([0.6, 0.6, 0.4, 0.4])
    rows = verdicts_of(method_targets(study))
    assert rows[a.format("Ditto", "best personal")] == "not shown (site-3 +0.0750 (+0.0500 to +0.1000); site-4 " + (
        "+0.0000 (-0.1000 to +0.1000))"
    )
    assert rows["(a) and (b) by one method"] == NOT_SHOWN
    markdown = to_markdown(hetero_results())
    for text in (
        "# Accuracy study: centralised vs aggregation methods vs local-only on the heterogeneous benchmark",
        "site-4 mixed-grade, noisy scanner: 8 training, 2 validation, 4 test",
        "The federated arms (FedAvg, Ditto lambda=0.1) each run 25 rounds",
        "Ditto's sites also train a personal model each round, 24 more steps",
        "## Aggregation methods",
        "| site-2 | 24 | FedAvg | final global | 0.4500 | 0.5000 | -0.0500 (-0.0500 to -0.0500) | 0 of 4 |",
        "| FedAvg | site-1, site-4 | site-2 | site-3 |",
        "## ditto: each site's personal model",
        "| ditto | personal, each site its own | 0.5750 | 0.5750 | 0.5750 | 0.5750 |",
        "| centralised | 0.3000 | 0.8000 | 2.0 | 2.0 |",  # 0.6 over the second half of 120 s
        "Validation cases: all 4 sites' for the centralised and federated arms,",
    ):
        assert text in markdown, text


def test_on_the_reference_pair_each_method_is_judged_on_the_lgg_sites_own_cases():
    sites = {"site-1": {"grade": "HGG", "profile": "reference", "split": [16, 4, 4]}}
    sites["site-2"] = {"grade": "LGG", "profile": "reference", "split": [16, 4, 4]}
    names = list(sites)
    values = {s: [0.5, 0.5, 0.5, 0.5] for s in names}
    arms = {
        "fedprox": arm(names, {**values, "site-2": [0.45] * 4}, job={"algorithm": "fedprox"}),
        "scaffold": arm(names, {**values, "site-2": [0.6, 0.6, 0.4, 0.45]}, job={"algorithm": "scaffold"}),
        "local-site-2": arm(names, values),
    }
    rows = verdicts_of(method_targets(made_up_study(REFERENCE, arms, sites)))
    c = (
        "(c) {}'s final global model: the LGG miss closed, its interval against local-only site-2 on site-2's test "
        "cases not below zero"
    )
    assert rows[c.format("FedProx")] == f"{MISSED}; above local-only: {MISSED}"
    assert rows[c.format("SCAFFOLD")].startswith(f"{MET}; above local-only: not shown (+0.0125 (")
    assert not any(row.startswith("(a)") for row in rows)
    assert method_targets(made_up_study(REFERENCE, {"local-site-2": arms["local-site-2"]}, sites)) == []

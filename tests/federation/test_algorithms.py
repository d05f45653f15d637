"""The aggregation methods as job options: what each writes into the server's and the sites' configs."""

import json
import os

import pytest
from builders import TINY_TRAINING

from fedbrats.cli import main
from fedbrats.federation.build_job import CONFIG_FILES, build_job
from fedbrats.federation.catalog import job_definition
from fedbrats.runtime.fl.algorithms import ALGORITHM_DEFAULTS, ALGORITHMS, algorithm_arguments


def exported(tmp_path, algorithm, args=None, job="brats_fedavg_demo"):
    overrides = {"training": TINY_TRAINING, "algorithm": algorithm, "algorithm_args": args or {}}
    folder = build_job(job, str(tmp_path), overrides)
    server, client = [json.load(open(os.path.join(folder, "app", "config", c))) for c in CONFIG_FILES]
    components = {c["id"]: c for c in server["components"]}
    return server, client, components


def test_build_job_lists_the_algorithms(capsys):
    with pytest.raises(SystemExit):
        main(["build-job", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--algorithm {fedavg,fedprox,fedopt,scaffold,ditto}" in text and "--algorithm-arg NAME=VALUE" in text


def test_every_method_reaches_the_sites_with_its_arguments(tmp_path):
    for algorithm in ALGORITHMS:
        _, client, _ = exported(tmp_path / algorithm, algorithm)
        executor = client["executors"][0]["executor"]["args"]
        assert executor["algorithm"] == algorithm
        assert executor.get("algorithm_args", {}) == {}  # the defaults are filled in at the site


def test_fedopt_steps_a_server_optimiser_on_the_global_model_component(tmp_path):
    server, client, components = exported(tmp_path, "fedopt", {"lr": 0.5})
    generator = components["shareable_generator"]
    assert generator["path"] == "nvflare.app_opt.pt.fedopt.PTFedOptModelShareableGenerator"
    assert (
        generator["args"].get("source_model", "model") == "model"
        and components["persistor"]["args"]["model"] == "model"
    )
    assert generator["args"]["optimizer_args"]["path"] == "torch.optim.SGD"
    assert generator["args"]["optimizer_args"]["args"] == {"lr": 0.5, "momentum": 0.6}
    assert components["aggregator"]["args"]["expected_data_kind"] == "WEIGHT_DIFF"
    assert client["executors"][0]["executor"]["args"]["send_weight_diff"] is True


def test_scaffold_runs_flares_scaffold_workflow_over_weights_and_controls(tmp_path):
    server, client, components = exported(tmp_path, "scaffold")
    workflow = next(w for w in server["workflows"] if w["id"] == "fedavg")
    assert workflow["path"] == "fedbrats.runtime.fl.fedavg.ScoredScatterAndGatherScaffold"
    kinds = components["aggregator"]["args"]["expected_data_kind"]
    assert kinds == {"_model_weights_": "WEIGHT_DIFF", "scaffold_c_diff": "WEIGHT_DIFF"}


def test_ditto_and_fedprox_change_only_the_sites(tmp_path):
    def without_run_state(server):  # the run's state records the job's values, the method among them
        return {**server, "components": [c for c in server["components"] if c["id"] != "run_state"]}

    base_server, _, _ = exported(tmp_path / "fedavg", "fedavg")
    for algorithm, args in (("ditto", {"lambda": 0.3}), ("fedprox", {"mu": 0.1})):
        server, client, components = exported(tmp_path / algorithm, algorithm, args)
        assert without_run_state(server) == without_run_state(base_server)
        assert components["run_state"]["args"]["job_values"]["algorithm"] == algorithm
        assert client["executors"][0]["executor"]["args"]["algorithm_args"] == args


def test_method_arguments_are_the_defaults_with_the_jobs_values_over_them():
    assert algorithm_arguments("fedopt", {"lr": 2.0}) == {**ALGORITHM_DEFAULTS["fedopt"], "lr": 2.0}
    with pytest.raises(ValueError, match="algorithm must be one of"):
        algorithm_arguments("fedsgd")
    with pytest.raises(ValueError, match=r"unknown arguments \['mu'\] of algorithm ditto; known: \['lambda'\]"):
        algorithm_arguments("ditto", {"mu": 1})
    with pytest.raises(ValueError, match="known: none"):
        algorithm_arguments("scaffold", {"lr": 1})
    with pytest.raises(ValueError, match="unknown arguments"):
        job_definition("brats_fedavg_demo", {"algorithm": "fedavg", "algorithm_args": {"mu": 0.1}})


def test_a_jobs_synthetic_sites_name_its_sites():
    hetero = job_definition("brats_hetero")
    assert [s.split(":")[0] for s in hetero.synthetic_sites] == list(hetero.sites)
    with pytest.raises(ValueError, match="must name the sites"):
        job_definition("brats_hetero", {"synthetic_sites": ["site-1:HGG"]})
    # sites named on the command line bring their own synthetic data
    assert job_definition("brats_hetero", {"sites": ["a", "b"], "min_clients": 2}).synthetic_sites == ()

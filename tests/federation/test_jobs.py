"""Jobs written by the recipe: definitions, exported folders, the committed app/config, the job scripts."""

import ast
import json
import os
import subprocess
import sys

import pytest
from builders import TINY_FLAGS, TINY_TRAINING
from conftest import REPO

from fedbrats.cli import main
from fedbrats.federation.build_job import CONFIG_FILES, build_job, export_app_config
from fedbrats.federation.catalog import job_definition, job_recipe
from fedbrats.federation.entry import make_env, parse_args
from fedbrats.federation.envs import RunningPocEnv
from fedbrats.federation.options import overrides_from_args
from fedbrats.federation.training import CPU_RECIPE, DEMO_TRAINING


def configs(job_dir):
    return [json.load(open(os.path.join(job_dir, "app", "config", c))) for c in CONFIG_FILES]


def test_app_config_is_what_the_recipe_exports(tmp_path):
    fresh = export_app_config("brats_fedavg", str(tmp_path))
    for name, path in fresh.items():
        committed = os.path.join(REPO, "app", "config", name)
        assert json.load(open(path)) == json.load(open(committed)), (
            f"app/config/{name} differs from the recipe's export: run "
            "'fedbrats build-job brats_fedavg --app-config app/config'"
        )


def test_build_job_exports_the_recipe_with_overrides(tmp_path, capsys):
    assert (
        main(
            [
                "build-job",
                "brats_fedavg",
                "--out",
                str(tmp_path),
                "--rounds",
                "3",
                "--crop",
                "96",
                "96",
                "64",
                "--eval-split",
                "validation",
            ]
        )
        == 0
    )
    job = tmp_path / "brats_fedavg"
    server, client = configs(job)
    fedavg = next(w for w in server["workflows"] if w["id"] == "fedavg")
    assert fedavg["path"] == "fedbrats.runtime.fl.fedavg.ScoredScatterAndGather"
    assert fedavg["args"]["num_rounds"] == 3 and fedavg["args"]["min_clients"] == 2
    persistor = next(c for c in server["components"] if c["id"] == "persistor")
    model = next(c for c in server["components"] if c["id"] == persistor["args"]["model"])
    assert model["path"] == "fedbrats.runtime.model.BratsSegResNetVAE" and model["args"]["crop"] == [96, 96, 64]
    assert server["server"]["task_request_interval"] == 0.2
    executor = client["executors"][0]
    assert executor["tasks"] == ["train", "submit_model", "validate", "validate_global"]
    args = executor["executor"]["args"]
    assert args["training"]["crop"] == [96, 96, 64] and args["training"]["init_filters"] == 16
    assert args["eval_split"] == "validation" and "data_root" not in args
    assert (job / "app" / "config" / "datalists" / "site-1.json").is_file()
    assert json.load(open(job / "meta.json"))["min_clients"] == 2
    assert "job written to" in capsys.readouterr().out


def test_a_job_carries_only_the_site_runtime_as_real_copies(tmp_path):
    custom = os.path.join(build_job("brats_fedavg_demo", str(tmp_path)), "app", "custom")
    files = sorted(os.path.relpath(os.path.join(d, f), custom) for d, _, names in os.walk(custom) for f in names)
    runtime = ("engine.py", "metrics.py", "data/loaders.py", "fl/executor.py")
    assert {f"fedbrats/runtime/{name}" for name in runtime} <= set(files)
    outside = [f for f in files if not f.startswith("fedbrats/runtime/") and f != "fedbrats/__init__.py"]
    assert not outside and all(f.endswith(".py") for f in files), files
    assert not any(os.path.islink(os.path.join(custom, f)) for f in files)
    for f in files:
        for node in ast.walk(ast.parse(open(os.path.join(custom, f)).read())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                assert not name.startswith("fedbrats") or name.startswith("fedbrats.runtime"), f"{f} imports {name}"


def test_sites_flag_sets_the_federation_and_by_default_waits_for_every_site():
    three = job_definition(
        "brats_fedavg", overrides_from_args(parse_args(argv=["--sites", "site-1", "site-2", "site-3"]))
    )
    assert three.sites == ("site-1", "site-2", "site-3") and three.min_clients == 3
    two_of_three = overrides_from_args(parse_args(argv=["--sites", "a", "b", "c", "--min-clients", "2"]))
    assert job_definition("brats_fedavg", two_of_three).min_clients == 2
    assert job_definition("brats_fedavg", overrides_from_args(parse_args(argv=[]))).sites == ("site-1", "site-2")


def test_three_sites_with_grades_give_a_job_of_three_and_their_synthetic_grades(tmp_path, capsys):
    argv = ["--sites", "site-1:HGG", "site-2:LGG", "site-3:mix", "-w", str(tmp_path / "sim")]
    args = parse_args(argv=argv)
    recipe = job_recipe("brats_fedavg_demo", overrides_from_args(args))
    assert recipe.sites == ["site-1", "site-2", "site-3"] and recipe.definition.min_clients == 3
    env = make_env(args, recipe)
    assert [str(s) for s in env.site_grades] == ["site-1:HGG", "site-2:LGG", "site-3:mix"]
    assert [str(s) for s in make_env(parse_args(argv=[]), job_recipe("brats_fedavg_demo")).site_grades] == [
        "site-1:HGG",
        "site-2:LGG",
    ]
    assert main(["build-job", "brats_fedavg_demo", "--out", str(tmp_path), "--sites", "a:LGG", "b", "c:mix"]) == 0
    assert json.load(open(tmp_path / "brats_fedavg_demo" / "meta.json"))["min_clients"] == 3


def test_a_jobs_synthetic_sites_and_those_of_the_command_line_reach_the_simulator(tmp_path):
    hetero = job_recipe("brats_hetero")
    env = make_env(parse_args(argv=["-w", str(tmp_path)]), hetero)
    assert [(s.name, s.profile, s.cases) for s in env.site_grades] == [
        ("site-1", "reference", 56),
        ("site-2", "clinical-1.5t", 34),
        ("site-3", "gain-bias", 22),
        ("site-4", "noisy", 12),
    ]
    args = parse_args(argv=["--sites", "site-1:HGG:noisy:6", "site-2:thick-slice", "-w", str(tmp_path)])
    recipe = job_recipe("brats_hetero", overrides_from_args(args))
    assert recipe.sites == ["site-1", "site-2"] and recipe.definition.min_clients == 2
    assert [str(s) for s in make_env(args, recipe).site_grades] == ["site-1:HGG:noisy:6", "site-2:LGG:thick-slice"]


def test_job_definitions():
    demo = job_definition("brats_fedavg_demo")
    assert demo.num_rounds == 6 and demo.sites == ("site-1", "site-2") and demo.min_clients == 2
    assert dict(demo.training) == DEMO_TRAINING and demo.synthetic_cases == 10
    assert {k: v for k, v in DEMO_TRAINING.items() if k not in ("crop", "local_steps")} == {
        k: v for k, v in CPU_RECIPE.items() if k not in ("crop", "local_steps")
    }
    settings = demo.settings()
    assert settings.batch_size == 2 and settings.local_steps == 75 and settings.window == (80, 80, 56)
    assert settings.crop == (32, 32, 32)
    assert job_definition("brats_fedavg_demo", {"training": {"crop": [48, 48, 48]}}).settings().local_steps == 75
    central = job_recipe("brats_central")
    assert central.sites == ["site-All"] and central.definition.min_clients == 1
    assert job_definition("brats_fedavg", {"num_rounds": None}).num_rounds == 600


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"rounds": 3}, "unknown job values"),
        ({"training": {"crpo": [1, 2, 3]}}, "unknown training settings"),
        ({"eval_split": "test"}, "eval_split"),
        ({"min_clients": 3}, "min_clients"),
    ],
)
def test_bad_overrides_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        job_definition("brats_fedavg", overrides)


def test_job_script_exports_what_build_job_writes(tmp_path):
    flags = ["--rounds", "2", *TINY_FLAGS]
    script = os.path.join(REPO, "jobs", "brats_fedavg_demo", "job.py")
    done = subprocess.run(
        [sys.executable, script, "--export", "--export-dir", str(tmp_path / "exported"), *flags],
        capture_output=True,
        text=True,
        cwd=str(tmp_path),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr, done.stderr
    built = build_job("brats_fedavg_demo", str(tmp_path / "built"), {"num_rounds": 2, "training": TINY_TRAINING})
    assert configs(tmp_path / "exported" / "brats_fedavg_demo") == configs(built)


def test_submitting_to_poc_refuses_when_no_system_runs(tmp_path):
    env = RunningPocEnv(str(tmp_path / "poc"))
    with pytest.raises(RuntimeError, match="no POC system is running"):
        job_recipe("brats_fedavg_demo").run(env)
    assert not (tmp_path / "poc").exists()


def result_filters(client):
    return [
        (c["tasks"], f["path"].rsplit(".", 1)[1], f["args"])
        for c in client["task_result_filters"]
        for f in c["filters"]
    ]


def test_privacy_options_put_flares_filter_on_the_sites_training_results(tmp_path, capsys):
    flags = ["build-job", "brats_fedavg", "--out", str(tmp_path / "svt"), "--privacy", "svt", "--scope", "brats-svt"]
    assert main([*flags, "--privacy-arg", "epsilon=0.01", "--privacy-arg", "replace=false"]) == 0
    server, client = configs(tmp_path / "svt" / "brats_fedavg")
    svt = {"fraction": 0.9, "epsilon": 0.01, "noise_var": 1.0, "gamma": 1e-4, "replace": False}
    assert [(t, n, {k: a[k] for k in svt}) for t, n, a in result_filters(client)] == [(["train"], "SVTPrivacy", svt)]
    assert client["executors"][0]["executor"]["args"]["send_weight_diff"] is True
    aggregator = next(c for c in server["components"] if c["id"] == "aggregator")
    assert aggregator["path"] == "fedbrats.runtime.fl.guarded_aggregator.GuardedAggregator"
    assert aggregator["args"]["expected_data_kind"] == "WEIGHT_DIFF" and aggregator["args"]["min_clients"] == 2
    evaluation = next(w for w in server["workflows"] if w["id"] == "cross_site_validate")
    assert evaluation["args"]["submit_model_task_name"] == ""  # local models stay at the sites
    assert json.load(open(tmp_path / "svt" / "brats_fedavg" / "meta.json"))["scope"] == "brats-svt"

    server, client = configs(build_job("brats_fedavg", str(tmp_path / "exclude"), {"privacy": "exclude"}))
    [(tasks, name, args)] = result_filters(client)
    assert name == "ExcludeVars" and args["exclude_vars"] and all(v.startswith("vae_") for v in args["exclude_vars"])
    assert client["executors"][0]["executor"]["args"]["local_vars"] == "^vae_"
    assert client["executors"][0]["executor"]["args"]["send_weight_diff"] is True
    aggregator = next(c for c in server["components"] if c["id"] == "aggregator")
    assert (
        aggregator["args"]["allowed_missing"] == "^vae_" and aggregator["args"]["expected_data_kind"] == "WEIGHT_DIFF"
    )

    server, client = configs(build_job("brats_fedavg", str(tmp_path / "percentile"), {"privacy": "percentile"}))
    assert result_filters(client) == [
        (["train"], "PercentilePrivacy", {"percentile": 10, "gamma": 0.01, "data_kinds": ["WEIGHT_DIFF", "WEIGHTS"]})
    ]
    assert client["executors"][0]["executor"]["args"]["send_weight_diff"] is True


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"privacy": "dp"}, "privacy must be one of"),
        ({"privacy": "svt", "privacy_args": {"epsilom": 1}}, "unknown arguments"),
        ({"privacy_args": {"epsilon": 1}}, "without a privacy filter"),
        ({"privacy": "exclude", "privacy_args": {"exclude_vars": "^nothing"}}, "matches no tensor"),
    ],
)
def test_bad_privacy_options_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        job_recipe("brats_fedavg", overrides)


class FinishedRun:
    """A submitted job's ``Run`` after the job ended with ``status``, its result downloaded to ``result``."""

    def __init__(self, result, status):
        self.result, self.status = result, status

    def get_job_id(self):
        return "job-1"

    def get_result(self, timeout=0.0):
        return self.result

    def get_status(self):
        return self.status


def test_job_py_exits_1_naming_why_when_the_job_did_not_finish_normally(tmp_path, capsys):
    from fedbrats.federation.entry import finish

    app = tmp_path / "job-1" / "workspace" / "app_server"
    app.mkdir(parents=True)
    selection = {
        "participants": ["site-1", "site-2", "site-3"],
        "lost": {"site-3": 2},
        "aborted": {"round": 2, "rounds_done": 1, "planned": 3, "reason": "alive sites 2 < required min_clients 3"},
        "run_state": {"folder": "/srv/run_state/job-1", "job": "brats_fedavg_demo", "planned": 3},
    }
    (app / "global_model_selection.json").write_text(json.dumps(selection))
    args = parse_args(None, ["--env", "poc"])
    assert finish(FinishedRun(str(tmp_path / "job-1"), "FINISHED:EXECUTION_EXCEPTION"), args) == 1
    printed = capsys.readouterr()
    assert printed.err.strip() == (
        "job job-1 did not finish normally: aborted in round 2 of 3: alive sites 2 < required min_clients 3 "
        "(FINISHED:EXECUTION_EXCEPTION)"
    )
    assert "**The job was aborted** in round 2 of 3" in printed.out
    assert "`python jobs/brats_fedavg_demo/job.py --env poc --resume-from /srv/run_state/job-1`" in printed.out
    del selection["aborted"]
    (app / "global_model_selection.json").write_text(json.dumps(selection))
    assert finish(FinishedRun(str(tmp_path / "job-1"), "FINISHED:COMPLETED"), args) == 0
    assert "did not finish normally" not in capsys.readouterr().err

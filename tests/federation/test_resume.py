"""The run state a server keeps, and the job that resumes a run from it (no FLARE processes)."""

import json
import os
from unittest.mock import MagicMock

import pytest
from builders import TINY_TRAINING
from nvflare.apis.fl_constant import ReservedKey
from nvflare.apis.fl_context import FLContext
from nvflare.app_common.app_event_type import AppEventType

from fedbrats.cli import main
from fedbrats.evaluation.model_files import num_rounds
from fedbrats.federation.catalog import job_definition
from fedbrats.federation.definition import JobDefinition
from fedbrats.federation.resume import resume_definition
from fedbrats.runtime.fl.model_selector import SELECTION_FILE, CaseWeightedModelSelector
from fedbrats.runtime.run_state import (
    BEST_MODEL_FILE,
    GLOBAL_MODEL_FILE,
    STATE_FILE,
    copy_atomic,
    read_state,
    resume_point,
    write_state,
)

JOB = "brats_fedavg_demo"


def server_config(job_dir):
    return json.load(open(os.path.join(job_dir, "app", "config", "config_fed_server.json")))


def component(config, id_):
    return next(c for c in config["components"] + config["workflows"] if c["id"] == id_)


def kept_run(folder, rounds_done, num_rounds=4, job=JOB, overrides=None):
    """A state folder as the server leaves it after ``rounds_done`` rounds of ``job``."""
    definition = job_definition(job, {"num_rounds": num_rounds, "training": TINY_TRAINING, **(overrides or {})})
    history = [{"round": r, "score": 0.1 * r, "sites": {}} for r in range(1, rounds_done)]
    best = history[-1]["round"] if history else None
    state = {
        "job_id": "abc",
        "job": {"name": definition.name, **definition.values()},
        "num_rounds": num_rounds,
        "rounds_done": rounds_done,
        "best_round": best,
        "best_score": 0.1 * best if best else None,
        "history": history,
    }
    for name in (GLOBAL_MODEL_FILE, BEST_MODEL_FILE):
        with open(os.path.join(folder, name), "wb") as f:
            f.write(b"weights")
    write_state(str(folder), state)
    return str(folder)


def test_state_is_replaced_whole_and_read_back(tmp_path):
    write_state(str(tmp_path), {"job": {"name": JOB}, "rounds_done": 1})
    write_state(str(tmp_path), {"job": {"name": JOB}, "rounds_done": 2})
    assert read_state(str(tmp_path))["rounds_done"] == 2
    assert sorted(os.listdir(tmp_path)) == [STATE_FILE]  # no temporary file left
    (tmp_path / "a").write_bytes(b"new")
    (tmp_path / "b").write_bytes(b"old")
    copy_atomic(str(tmp_path / "a"), str(tmp_path / "b"))
    assert (tmp_path / "b").read_bytes() == b"new" and sorted(os.listdir(tmp_path)) == ["a", "b", STATE_FILE]
    with pytest.raises(ValueError, match="not the state folder of a run"):
        read_state(str(tmp_path / "elsewhere"))


def test_resume_point_is_the_round_after_the_last_completed_one():
    assert resume_point({"rounds_done": 2, "num_rounds": 5}) == (2, 5)
    assert resume_point({"rounds_done": 5, "num_rounds": 5}, planned_rounds=8) == (5, 8)
    with pytest.raises(ValueError, match="completed all 5 planned rounds"):
        resume_point({"rounds_done": 5, "num_rounds": 5})
    with pytest.raises(ValueError, match="completed no round"):
        resume_point({"rounds_done": 0, "num_rounds": 5})


def test_a_job_definition_round_trips_through_its_values():
    job = job_definition("brats_fedavg", {"sites": ["a", "b", "c"], "training": {"crop": [64, 64, 64]}})
    assert JobDefinition.from_values(job.name, json.loads(json.dumps(job.values()))) == job
    with pytest.raises(ValueError, match="unknown job values"):
        JobDefinition.from_values(job.name, {**job.values(), "colour": "red"})
    with pytest.raises(ValueError, match="start_round"):
        job.with_overrides({"start_round": 3})  # only a resumed run starts later


def test_resumed_job_is_the_recorded_job_from_the_next_round_to_the_planned_total(tmp_path):
    run = kept_run(tmp_path, rounds_done=2, overrides={"sites": ["site-1", "site-2", "site-3"], "min_clients": 2})
    job = resume_definition(run, JOB)
    assert (job.start_round, job.num_rounds, job.resume_from) == (2, 4, run)
    assert job.sites == ("site-1", "site-2", "site-3") and job.min_clients == 2
    assert list(job.settings().crop) == TINY_TRAINING["crop"]
    assert resume_definition(run, overrides={"num_rounds": 9, "min_clients": 3}).num_rounds == 9
    with pytest.raises(ValueError, match="is a run of brats_fedavg_demo, not of brats_fedavg"):
        resume_definition(run, "brats_fedavg")


def test_build_job_resume_from_writes_a_job_starting_from_the_kept_model(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    run = kept_run(tmp_path / "run", rounds_done=3)
    assert main(["build-job", JOB, "--out", str(tmp_path / "jobs"), "--resume-from", run]) == 0
    job_dir = str(tmp_path / "jobs" / JOB)
    config = server_config(job_dir)
    assert component(config, "persistor")["args"]["source_ckpt_file_full_name"] == os.path.join(run, GLOBAL_MODEL_FILE)
    fedavg = component(config, "fedavg")["args"]
    assert (fedavg["start_round"], fedavg["num_rounds"]) == (3, 1)
    keeper = component(config, "run_state")["args"]
    assert (keeper["resume_from"], keeper["num_rounds"], keeper["job_values"]["start_round"]) == (run, 4, 3)
    client = json.load(open(os.path.join(job_dir, "app", "config", "config_fed_client.json")))
    assert client["executors"][0]["executor"]["args"]["training"]["crop"] == TINY_TRAINING["crop"]
    assert num_rounds(os.path.join(job_dir, "app", "config", "config_fed_client.json")) == 4
    capsys.readouterr()
    with pytest.raises(SystemExit, match="completed all 4 planned rounds"):
        main(["build-job", JOB, "--out", str(tmp_path / "jobs"), "--resume-from", kept_run(tmp_path, 4)])


def test_a_fresh_job_keeps_its_state_without_resuming(tmp_path):
    from fedbrats.federation.build_job import build_job

    config = server_config(build_job(JOB, str(tmp_path), {"run_state_dir": "/srv/fedbrats/runs"}))
    keeper = component(config, "run_state")["args"]
    assert keeper["state_root"] == "/srv/fedbrats/runs" and not keeper.get("resume_from")
    assert keeper["job_name"] == JOB and keeper["num_rounds"] == job_definition(JOB).num_rounds
    assert "source_ckpt_file_full_name" not in component(config, "persistor")["args"]
    assert "start_round" not in component(config, "fedavg")["args"]


def test_a_restored_selection_keeps_its_best_until_a_later_model_beats_it(tmp_path):
    engine = MagicMock()
    engine.get_workspace.return_value.get_app_dir.return_value = str(tmp_path)
    fl_ctx = FLContext()
    fl_ctx.set_prop(ReservedKey.ENGINE, engine, private=True, sticky=False)
    earlier = {"best_round": 2, "best_score": 0.6, "history": [{"round": 1, "score": 0.4}, {"round": 2, "score": 0.6}]}
    selector = CaseWeightedModelSelector()
    selector.restore(earlier, fl_ctx)
    written = json.load(open(tmp_path / SELECTION_FILE))
    assert {k: written[k] for k in earlier} == earlier and written["lost"] == {}
    assert not selector.score_model(2, {"site-1": (0.6, 3)}, fl_ctx)  # the last model scored again: still one entry
    assert not selector.score_model(3, {"site-1": (0.5, 3)}, fl_ctx)
    assert (selector.best_round, selector.best_score) == (2, 0.6)
    assert selector.score_model(4, {"site-1": (0.7, 1), "site-2": (0.9, 1)}, fl_ctx)
    selection = json.load(open(tmp_path / SELECTION_FILE))
    assert [h["round"] for h in selection["history"]] == [1, 2, 3, 4]
    assert (selection["best_round"], selection["best_score"]) == (4, pytest.approx(0.8))
    # only the model that beat the kept best is saved as the best global model
    assert [c.args[0] for c in engine.fire_event.call_args_list] == [AppEventType.GLOBAL_BEST_MODEL_AVAILABLE]

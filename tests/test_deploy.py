import json
import os
import re
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import yaml
from conftest import REPO
from nvflare.apis.dxo import DXO, DataKind, from_shareable
from nvflare.apis.filter import ContentBlockedException
from nvflare.apis.fl_constant import FilterKey
from nvflare.apis.fl_context import FLContext
from nvflare.apis.workspace import Workspace
from nvflare.app_common.filters.dxo_blocker import DXOBlocker
from nvflare.app_common.filters.percentile_privacy import PercentilePrivacy
from nvflare.app_common.filters.svt_privacy import SVTPrivacy
from nvflare.app_opt.job_launcher.study_runtime import load_study_runtime_file
from nvflare.private.fed.app.fl_conf import create_privacy_manager

PROJECT = os.path.join(REPO, "deploy", "project.yml")
DOCKERFILE = os.path.join(REPO, "deploy", "Dockerfile")
VERSION = re.search(r'^version = "(.+)"', open(os.path.join(REPO, "pyproject.toml")).read(), re.M).group(1)
IMAGE = f"fedbrats:{VERSION}"
SITES = ("site-1", "site-2")


def nvflare(*args, cwd):
    done = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "nvflare"), *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        cwd=str(cwd),
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def kits(tmp_path_factory):
    """The startup kits of ``deploy/project.yml``."""
    out = tmp_path_factory.mktemp("provision")
    nvflare("provision", "-p", PROJECT, "-w", str(out), cwd=out)
    return out / "fedbrats" / "prod_00"


def test_provisioning_project_makes_startup_kits(kits):
    assert (kits / "fl-server.example.org" / "startup" / "start.sh").is_file()
    for site in SITES:
        assert (kits / site / "startup" / "start.sh").is_file()
        assert (kits / site / "startup" / "client.crt").is_file()
        assert (kits / site / "local").is_dir()
    assert (kits / "admin@coordinator.example.org" / "startup" / "fl_admin.sh").is_file()


def test_every_kit_gets_a_docker_script_that_runs_the_fedbrats_image(kits):
    for participant in ("fl-server.example.org", *SITES, "admin@coordinator.example.org"):
        script = (kits / participant / "startup" / "docker.sh").read_text()
        assert f"DOCKER_IMAGE={IMAGE}\n" in script, participant
    for site in SITES:  # the site's data, read-only, where its local/fedbrats_site.json points in the container
        assert "-v $MY_DATA_DIR:/data/:ro" in (kits / site / "startup" / "docker.sh").read_text()
    compose = yaml.safe_load((kits / "compose.yaml").read_text())
    assert sorted(compose["services"]) == sorted(["fl-server.example.org", *SITES])
    assert (kits / "nvflare_compose" / "Dockerfile").read_text().startswith(f"FROM {IMAGE}\n")
    assert (kits / "nvflare_compose" / "requirements.txt").read_text() == ""  # the image holds everything


def test_deploy_prepare_makes_container_kits_of_a_site_kit(kits, tmp_path):
    kit = tmp_path / "site-1"
    shutil.copytree(kits / "site-1", kit)
    shutil.copy(os.path.join(REPO, "deploy", "local", "study_runtime.yaml"), kit / "local")
    for runtime in ("docker", "k8s"):
        config = os.path.join(REPO, "deploy", "prepare", f"{runtime}.yaml")
        nvflare("deploy", "prepare", str(kit), "--config", config, "--output", str(tmp_path / runtime), cwd=tmp_path)
        assert (tmp_path / runtime / "local" / "study_runtime.yaml").read_text() == (
            kit / "local" / "study_runtime.yaml"
        ).read_text()
        assert not (tmp_path / runtime / "startup" / "start.sh").exists()
    assert (
        f'DOCKER_IMAGE=${{NVFL_P_IMAGE:-"{IMAGE}"}}'
        in (tmp_path / "docker" / "startup" / "start_docker.sh").read_text()
    )
    values = yaml.safe_load((tmp_path / "k8s" / "helm_chart" / "values.yaml").read_text())
    assert values["image"]["tag"] == VERSION and values["image"]["repository"].endswith("/fedbrats")


def test_container_jobs_see_the_site_data_read_only_where_the_site_setting_says():
    path = os.path.join(REPO, "deploy", "local", "study_runtime.yaml")
    setting = json.loads(re.search(r"^#\s+(\{.*\})$", open(path).read(), re.M).group(1))
    for runtime in ("docker", "k8s"):
        (dataset,) = load_study_runtime_file(path, runtime)["default"].datasets
        assert dataset.read_only and dataset.mount_path == setting["data_root"]


def dockerfile_commands():
    """The instructions of deploy/Dockerfile, continuation lines joined, comments left out."""
    text = re.sub(r"\\\n", " ", re.sub(r"^\s*#.*\n", "", open(DOCKERFILE).read(), flags=re.M))
    return [line.strip() for line in text.splitlines() if line.strip()]


def test_the_image_installs_torch_then_the_project_from_pyproject_as_setup_sh_does():
    commands = dockerfile_commands()
    installs = [re.sub(r"\s+", " ", i).strip() for c in commands for i in re.findall(r"pip install ([^&;]+)", c)]
    assert installs == ['"${TORCH_SPEC}" --index-url "${TORCH_INDEX_URL}"', '".${EXTRAS:+[$EXTRAS]}"']
    setup = open(os.path.join(REPO, "scripts", "setup.sh")).read()
    assert 'spec="$TORCH_SPEC"' in setup and '--index-url "$TORCH_INDEX_URL"' in setup  # the same two knobs
    assert 'install -e ".[test]"' in setup  # then the project from pyproject.toml, as the image does
    import torch

    assert f"ARG TORCH_SPEC=torch=={torch.__version__.split('+')[0]}" in commands  # the torch the tests run
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in commands  # CPU by default
    assert "FROM ${BASE_IMAGE}" in commands and any(c.startswith("ARG BASE_IMAGE=python:3.") for c in commands)
    copied = [c.split()[1:-1] for c in commands if c.startswith("COPY")]
    assert ["pyproject.toml", "README.md"] in copied and not any("requirements" in c for c in commands)


def image_context():
    """(source, destination) of deploy/Dockerfile's COPY instructions, relative to the repository and the image."""
    pairs, workdir = [], "/"
    for command in dockerfile_commands():
        if command.startswith("WORKDIR"):
            workdir = command.split()[1]
        elif command.startswith("COPY"):
            *sources, dest = command.split()[1:]
            for source in sources:  # a folder's contents go into dest, a file into a dest that ends with /
                is_file = os.path.isfile(os.path.join(REPO, source))
                into = os.path.basename(source) if is_file and dest.endswith("/") else ""
                pairs.append((source, os.path.normpath(os.path.join(workdir, dest, into))))
    return pairs


def test_dockerignore_lets_through_what_the_image_copies():
    allowed = [line[1:] for line in open(os.path.join(REPO, ".dockerignore")).read().splitlines() if line[:1] == "!"]
    for source, _ in image_context():
        assert source in allowed, source


def test_the_images_build_context_holds_the_whole_package(tmp_path):
    """Without Docker: the files the image copies, laid out as in the image, build the package with its jobs and
    datalists (what the image's pip install builds)."""
    image = tmp_path / "image"
    for source, dest in image_context():
        target = image / dest.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        src = os.path.join(REPO, source)
        if os.path.isdir(src):
            shutil.copytree(src, target, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, target)
    project = image / "opt" / "fedbrats"
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path)]
    done = subprocess.run([*pip, str(project)], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    with zipfile.ZipFile(next(tmp_path.glob("fedbrats-*.whl"))) as wheel:
        names = set(wheel.namelist())
    for job in os.listdir(os.path.join(REPO, "jobs")):
        assert f"fedbrats/jobs/{job}/job.py" in names
    assert "fedbrats/datalists/site-1.json" in names and "fedbrats/runtime/fl/executor.py" in names


@pytest.mark.slow
def test_the_image_builds_and_runs_fedbrats(tmp_path):
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker command here")
    info = subprocess.run([docker, "info"], capture_output=True, text=True, timeout=60)
    if info.returncode != 0:
        pytest.skip(f"no Docker daemon answers: {(info.stderr.strip().splitlines() or ['docker info failed'])[-1]}")
    tag = "fedbrats:test"
    try:
        build = subprocess.run(
            [docker, "build", "-f", DOCKERFILE, "-t", tag, REPO], capture_output=True, text=True, timeout=3600
        )
        assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
        code = "import fedbrats.runtime.fl.executor, nvflare, torch; print(nvflare.__version__, torch.version.cuda)"
        done = subprocess.run([docker, "run", "--rm", tag, "python3", "-c", code], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.split()[1] == "None"  # the CPU build of torch by default
        cli = subprocess.run([docker, "run", "--rm", tag, "fedbrats", "--help"], capture_output=True, text=True)
        assert cli.returncode == 0 and "poc" in cli.stdout
    finally:
        subprocess.run([docker, "rmi", "-f", tag], capture_output=True)


def run_filters(filters, shareable):
    fl_ctx = FLContext()
    for f in filters:
        shareable = f.process(shareable, fl_ctx)
    return shareable


def test_site_privacy_policy_example_builds_flare_filters_that_let_only_filtered_differences_out(tmp_path):
    site = tmp_path / "site-1"
    (site / "startup").mkdir(parents=True)
    (site / "local").mkdir()
    shutil.copy(os.path.join(REPO, "deploy", "local", "privacy.json"), site / "local" / "privacy.json")
    policy = create_privacy_manager(Workspace(str(site), "site-1"), names_only=False)
    assert sorted(policy.name_to_scopes) == ["brats-percentile", "brats-svt"]
    assert policy.get_scope("").name == "brats-svt"  # a job that names no scope gets the default
    privacy = {"brats-svt": SVTPrivacy, "brats-percentile": PercentilePrivacy}
    weights = {"conv.weight": np.full((4, 3), 0.5, np.float32), "conv.bias": np.linspace(-1, 1, 4).astype(np.float32)}
    for name, scope in policy.name_to_scopes.items():
        filters = scope.task_result_filters[FilterKey.OUT]
        assert [type(f) for f in filters] == [DXOBlocker, privacy[name]]
        with pytest.raises(ContentBlockedException):
            run_filters(filters, DXO(DataKind.WEIGHTS, data=dict(weights)).to_shareable())
        diff = from_shareable(run_filters(filters, DXO(DataKind.WEIGHT_DIFF, data=dict(weights)).to_shareable()))
        assert diff.get_meta_prop("filter_history") == [privacy[name].__name__]
        assert {k: v.shape for k, v in diff.data.items()} == {k: v.shape for k, v in weights.items()}
        metrics = {"mean_dice": 0.5, "n_cases": 3}
        assert from_shareable(run_filters(filters, DXO(DataKind.METRICS, data=metrics).to_shareable())).data == metrics

"""The package as a user installs it: a wheel in a fresh virtual environment outside the repository.

The new environment reuses this one's dependencies through a ``.pth`` file (nothing is downloaded);
``fedbrats`` itself comes from the wheel, and every command runs from a folder outside the repository.
"""

import json
import os
import subprocess
import sys
import sysconfig

import pytest
from builders import TINY_FLAGS, write_site
from conftest import REPO

from fedbrats.runtime.fl.site_data import write_site_settings

pytestmark = pytest.mark.slow


SITES = ["site-1", "site-2"]


def run(cmd, cwd, env=None, timeout=300):
    done = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout
    )
    assert done.returncode == 0, f"{' '.join(map(str, cmd))}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(python, fedbrats command, a folder outside the repository) of a fresh environment holding the wheel."""
    tmp = tmp_path_factory.mktemp("wheel")
    assert not str(tmp).startswith(REPO)
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp / "dist"),
            REPO,
        ],
        tmp,
    )
    wheel = next((tmp / "dist").glob("fedbrats-*.whl"))
    venv = tmp / "venv"
    run([sys.executable, "-m", "venv", str(venv)], tmp)
    python = str(venv / "bin" / "python")
    site_packages = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp).strip()
    with open(os.path.join(site_packages, "project-dependencies.pth"), "w") as f:
        f.write(sysconfig.get_paths()["purelib"] + "\n")
    run([python, "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)], tmp)
    return python, str(venv / "bin" / "fedbrats"), tmp


def test_the_wheel_is_what_runs(installed):
    python, _, tmp = installed
    code = (
        "import os, fedbrats.package_data as p, fedbrats.federation.catalog as c; print(p.PACKAGE_DIR); "
        "print(len(p.reference_datalists()), os.path.isfile(p.CASE_TABLE)); print(' '.join(c.job_names())); "
        "print(os.path.islink(p.JOBS_DIR), os.path.islink(p.REFERENCE_DATALISTS)); "
        "from fedbrats.runners.annotate_server import PAGE_DIR, PAGE_FILES; "
        "print(all(os.path.isfile(os.path.join(PAGE_DIR, f)) for f, _ in PAGE_FILES.values()))"
    )
    where = run([python, "-c", code], tmp)
    package_file, data, jobs, links, page = where.strip().splitlines()
    assert package_file.startswith(str(tmp / "venv")), package_file
    assert data == "3 True"
    assert jobs == " ".join(sorted(os.listdir(os.path.join(REPO, "jobs"))))
    assert links == "False False"  # the datalists and the jobs are real files in the installed package
    assert page == "True", "the annotation page's files are not in the wheel"


def test_export_and_simulate_one_round_with_the_installed_package(installed):
    python, fedbrats, tmp = installed
    site_data = {}
    for k, site in enumerate(SITES):
        root = str(tmp / f"data-{site}")
        site_data[site] = {
            "data_root": root,
            "datalist": write_site(root, n_train=2, n_val=1, n_test=1 + k, name=f"{site}.json"),
        }
    settings = write_site_settings(str(tmp / "sites.json"), site_data)
    out = run(
        [fedbrats, "build-job", "brats_fedavg_demo", "--out", str(tmp / "jobs"), "--rounds", "1", *TINY_FLAGS], tmp
    )
    job = tmp / "jobs" / "brats_fedavg_demo"
    assert str(job) in out
    assert (job / "app" / "config" / "datalists" / "site-1.json").is_file()
    assert (job / "app" / "custom" / "fedbrats" / "runtime" / "fl" / "executor.py").is_file()
    assert sorted(os.listdir(job / "app" / "custom" / "fedbrats")) == ["__init__.py", "runtime"]
    env = {**os.environ, "FEDBRATS_SITES": settings}
    run(
        [fedbrats, "simulate", str(job), "-w", str(tmp / "sim"), "--sites", *SITES, "--threads", "2"],
        tmp,
        env,
        timeout=600,
    )
    results = json.load(open(tmp / "sim" / "server" / "simulate_job" / "cross_site_val" / "cross_val_results.json"))
    assert set(results) == set(SITES) and results["site-2"]["site-1"]["n_cases"] == 2
    report = run([fedbrats, "report", str(tmp / "sim"), "--out", str(tmp / "report")], tmp)
    assert "global model after 1 rounds" in report

"""``fedbrats simulate`` on a job that FLARE aborts (site-2's datalist names a label that is not there, and the job
needs both sites): the command exits 1 with a line naming why and when."""

import json
import os

import pytest
from builders import TINY_TRAINING, write_site

from fedbrats.cli import main
from fedbrats.federation.build_job import build_job

pytestmark = pytest.mark.slow


def test_simulate_exits_1_naming_why_when_the_job_is_aborted(tmp_path, capsys):
    root = str(tmp_path / "data")
    os.makedirs(os.path.join(root, "datalists"))
    for site in ("site-1", "site-2"):
        write_site(root, name=os.path.join("datalists", f"{site}.json"))
    datalist = os.path.join(root, "datalists", "site-2.json")
    with open(datalist) as f:
        cases = json.load(f)
    cases["training"][0]["label"] = "missing/seg.nii.gz"
    with open(datalist, "w") as f:
        json.dump(cases, f)
    job = build_job("brats_fedavg_demo", str(tmp_path / "jobs"), {"num_rounds": 2, "training": TINY_TRAINING})
    assert main(["simulate", job, "-w", str(tmp_path / "sim"), "--data-root", root]) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(
        "fedbrats simulate: the job did not finish normally: aborted in round 1 of 2: Result from site-2 is bad, "
        "error code: EXECUTION_EXCEPTION."
    ), last
    assert "(simulator exit code 2); see " in last

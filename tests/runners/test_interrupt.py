"""Ctrl-C on the product's commands that start FLARE processes: the command ends, and so does every process it
started, in the simulator (a process group) and in POC (an inherited environment mark)."""

import os
import signal
import subprocess
import sys
import time

import pytest
from builders import TINY_TRAINING, write_site
from poc_helpers import all_processes, processes_naming

from fedbrats.federation.build_job import build_job
from fedbrats.runners.poc import PocSystem

pytestmark = pytest.mark.slow

FEDBRATS = os.path.join(os.path.dirname(sys.executable), "fedbrats")
SITES = ["site-1", "site-2"]


def two_sites(root):
    """Tiny cases and a datalist per site under ``root/datalists``, as ``--data-root`` expects."""
    os.makedirs(os.path.join(root, "datalists"))
    for site in SITES:
        write_site(root, name=os.path.join("datalists", f"{site}.json"))


def start(cmd):
    """``cmd`` with its output piped and Ctrl-C handled as in a terminal, also when this test runs where SIGINT is
    ignored (a shell's background job)."""
    return subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def interrupt_when(proc, marker, timeout=300):
    """Read ``proc``'s output until a line holds ``marker``, then send it SIGINT (Ctrl-C); returns its output."""
    lines, deadline = [], time.time() + timeout
    for line in proc.stdout:
        lines.append(line)
        if marker in line or time.time() > deadline:
            break
    proc.send_signal(signal.SIGINT)
    try:
        rest, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    return "".join(lines) + rest


def test_ctrl_c_on_simulate_stops_the_simulator_and_its_sites(tmp_path):
    root = str(tmp_path / "data")
    two_sites(root)
    job = build_job("brats_fedavg_demo", str(tmp_path / "jobs"), {"num_rounds": 100, "training": TINY_TRAINING})
    workspace = str(tmp_path / "sim")
    cmd = [FEDBRATS, "simulate", job, "-w", workspace, "--data-root", root]
    proc = start(cmd)
    output = interrupt_when(proc, "round 1/100")
    assert "round 1/100" in output, output[-3000:]
    assert proc.returncode != 0
    time.sleep(1)
    assert processes_naming(workspace, all_processes()) == [], output[-3000:]


def test_ctrl_c_on_poc_stops_the_server_and_the_sites(tmp_path):
    site_data = []
    for site in SITES:
        root = str(tmp_path / f"data-{site}")
        os.makedirs(root)
        site_data.append(f"{site}={root},{write_site(root, name=f'{site}.json')}")
    poc_root = str(tmp_path / "poc-run")
    cmd = [FEDBRATS, "poc", "--root", poc_root, "--rounds", "100", "--site-data", *site_data]
    proc = start(cmd)
    output = interrupt_when(proc, "Round 0 started")  # the job runs on the server and the sites
    assert "Round 0 started" in output and "[poc] stopped" in output, output[-3000:]
    assert proc.returncode != 0
    assert PocSystem(poc_root, SITES).our_processes() == [], output[-3000:]
    assert processes_naming(poc_root, all_processes()) == []

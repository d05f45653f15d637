"""Run an exported job in FLARE's simulator, showing rounds as they go.

The simulator runs as FLARE's own ``SimEnv`` runs it (``python -m nvflare.private.fed.app.simulator.simulator``,
not the deprecated ``nvflare simulator`` command), in a session of its own so that every process it
starts is stopped at the end.
"""

import argparse
import contextlib
import os
import subprocess
import sys
import time
from typing import List, Optional

from fedbrats.evaluation.outcome import failure_text, read_logs, server_failure
from fedbrats.runners.processes import flare_env, stop_marked, stop_process_group
from fedbrats.runners.progress import LogFollower
from fedbrats.runtime.fl.site_data import SITES_ENV, write_site_settings

SIMULATOR = "nvflare.private.fed.app.simulator.simulator"

SIMULATION_MARK = "FEDBRATS_SIMULATION"
"""Environment variable every process of a simulator run inherits, holding its workspace: how the run finds its
processes after FLARE moved its site workers into sessions of their own."""


def simulator_log(workspace: str) -> str:
    return os.path.abspath(workspace).rstrip(os.sep) + ".log"


class JobFailed(RuntimeError):
    """A job that did not finish normally; ``failure``: when and why, as :func:`fedbrats.evaluation.outcome.job_failure`
    gives it."""

    def __init__(self, message: str, failure: dict):
        super().__init__(message)
        self.failure = failure


def simulation_failure(workspace: str, code: int) -> Optional[dict]:
    """None when the simulator's job finished normally, else when and why it ended: from the simulator's exit code
    ``code``, the ``aborted`` entry of the server's model selection and the server's log."""
    job = os.path.join(os.path.abspath(workspace), "server", "simulate_job")
    return server_failure(job, f"simulator exit code {code}" if code else None, read_logs([simulator_log(workspace)]))


def run_simulator(
    job_dir: str,
    workspace: str,
    sites: List[str],
    threads: int,
    site_settings: Optional[str] = None,
    gpu: Optional[str] = None,
    quiet: bool = False,
) -> float:
    """Run the simulator to completion; its full log goes to ``<workspace>.log`` (the simulator
    empties its workspace when it starts). Returns the wall time in seconds."""
    os.makedirs(workspace, exist_ok=True)
    cmd = [sys.executable, "-m", SIMULATOR, job_dir, "-w", workspace, "-c", ",".join(sites), "-t", str(threads)]
    if gpu:
        cmd += ["-gpu", gpu]
    mark = os.path.abspath(workspace)
    env = flare_env({SIMULATION_MARK: mark, **({SITES_ENV: site_settings} if site_settings else {})})
    log_path = simulator_log(workspace)
    start = time.time()
    print(f"[simulator] {' '.join(cmd)}\n[simulator] full log: {log_path}", flush=True)
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
        start_new_session=True,
    )
    logs = os.path.join(os.path.abspath(workspace), "*", "log.txt")
    try:
        with open(log_path, "w") as log, contextlib.nullcontext() if quiet else LogFollower(logs, "simulator"):
            for line in proc.stdout:
                log.write(line)
            code = proc.wait()
    finally:
        stop_process_group(proc)
        stop_marked(SIMULATION_MARK, mark)  # the site workers, which run in sessions of their own
    failure = simulation_failure(workspace, code)
    if failure:
        raise JobFailed(f"the job did not finish normally: {failure_text(failure)}; see {log_path}", failure)
    return time.time() - start


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job", help="exported job folder (build-job, or a job.py's --export)")
    parser.add_argument("--workspace", "-w", default="workspace/sim")
    parser.add_argument("--sites", nargs="+", default=["site-1", "site-2"])
    parser.add_argument("--threads", "-t", type=int, default=2)
    parser.add_argument(
        "--data-root", help="one data root for all sites; datalists: <root>/datalists/<site>.json, else the job's"
    )
    parser.add_argument("--gpu", help="GPU ids for the clients, e.g. 0,1 (site-1 on GPU 0, site-2 on GPU 1)")


def run(args: argparse.Namespace) -> int:
    """Exit code 1 when the job did not finish normally."""
    settings = None
    if args.data_root:
        data = {s: {"data_root": args.data_root} for s in args.sites}
        # beside the workspace, not in it: the simulator empties its workspace when it starts
        settings = write_site_settings(os.path.abspath(args.workspace).rstrip(os.sep) + ".sites.json", data)
    try:
        seconds = run_simulator(args.job, args.workspace, args.sites, args.threads, settings, args.gpu)
    except JobFailed as e:
        sys.stdout.flush()
        print(f"fedbrats simulate: {e}", file=sys.stderr)
        return 1
    print(f"[simulator] finished in {seconds:.0f} s; results in {os.path.abspath(args.workspace)}/server/simulate_job")
    return 0

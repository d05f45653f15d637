"""Run an exported job in FLARE's simulator, showing rounds as they go.

The simulator runs as FLARE's own ``SimEnv`` runs it (``python -m nvflare.private.fed.app.simulator.simulator``,
not the deprecated ``nvflare simulator`` command), in a session of its own so that every process it
starts is stopped at the end.
"""

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from typing import Dict, List, Optional

from ..constants import MALLOC_TUNING_ENV
from ..fl.site_data import SITES_ENV
from .progress import LogFollower

SIMULATOR = "nvflare.private.fed.app.simulator.simulator"
MMAP_THRESHOLD_ENV, RELAY_MMAP_THRESHOLD = "MALLOC_MMAP_THRESHOLD_", 128 * 1024
"""glibc's mmap threshold for the FLARE processes the product starts, fixed at glibc's initial value. Left to
itself glibc raises it after the first large buffer is freed, and a POC server's parent, which relays every
message between the job and the sites, then kept its freed message buffers: +14 % resident memory over 60
rounds against +1 % with the fixed value (docs/benchmarks.md). A site's training process sets its own
thresholds (:func:`fedbrats.engine.configure_cpu`)."""


def stop_process_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """Terminate ``proc`` and everything it started (it runs in its own session)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.5)


SIMULATION_MARK = "FEDBRATS_SIMULATION"
"""Environment variable every process of a simulator run inherits, holding its workspace: how the run finds its
processes after FLARE moved its site workers into sessions of their own."""


def marked_processes(mark: str, value: str) -> List[int]:
    """Pids of the processes (not this one) whose environment holds ``mark=value``."""
    wanted, pids = f"{mark}={value}".encode(), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                environment = f.read().split(b"\0")
        except OSError:
            continue
        if wanted in environment:
            pids.append(int(entry))
    return pids


def stop_marked(mark: str, value: str, grace: float = 10.0) -> None:
    """SIGTERM the processes marked ``mark=value``, and SIGKILL those still there after ``grace`` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in marked_processes(mark, value):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.time() + grace
        while marked_processes(mark, value) and time.time() < deadline:
            time.sleep(0.2)


def nvflare_command() -> str:
    """The ``nvflare`` CLI of this Python environment."""
    candidate = os.path.join(os.path.dirname(sys.executable), "nvflare")
    return candidate if os.path.exists(candidate) else "nvflare"


def flare_env(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """Environment for FLARE processes: this environment's bin first (FLARE starts plain ``python3``), and glibc's
    mmap threshold fixed unless the caller set it or turned the product's allocator tuning off."""
    env = dict(os.environ)
    if env.get(MALLOC_TUNING_ENV, "1") != "0":
        env.setdefault(MMAP_THRESHOLD_ENV, str(RELAY_MMAP_THRESHOLD))
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def write_site_settings(path: str, site_data: Dict[str, Dict[str, str]]) -> str:
    """The file named by FEDBRATS_SITES: each site's data root and datalist."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump({s: {k: os.path.abspath(v) for k, v in d.items() if v} for s, d in site_data.items()}, f, indent=2)
    return os.path.abspath(path)


def simulator_log(workspace: str) -> str:
    return os.path.abspath(workspace).rstrip(os.sep) + ".log"


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
    if code != 0:
        raise RuntimeError(f"the simulator exited with {code}; see {log_path}")
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


def run(args: argparse.Namespace) -> None:
    settings = None
    if args.data_root:
        data = {s: {"data_root": args.data_root} for s in args.sites}
        # beside the workspace, not in it: the simulator empties its workspace when it starts
        settings = write_site_settings(os.path.abspath(args.workspace).rstrip(os.sep) + ".sites.json", data)
    seconds = run_simulator(args.job, args.workspace, args.sites, args.threads, settings, args.gpu)
    print(f"[simulator] finished in {seconds:.0f} s; results in {os.path.abspath(args.workspace)}/server/simulate_job")

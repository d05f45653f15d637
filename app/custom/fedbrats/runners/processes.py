"""The FLARE processes the product starts: their environment, finding them by an inherited mark, stopping them."""

import os
import signal
import subprocess
import sys
import time
from typing import Dict, List, Optional

from fedbrats.runtime.constants import MALLOC_TUNING_ENV

MMAP_THRESHOLD_ENV, RELAY_MMAP_THRESHOLD = "MALLOC_MMAP_THRESHOLD_", 128 * 1024
"""glibc's mmap threshold for the FLARE processes the product starts, fixed at glibc's initial value. Left to
itself glibc raises it after the first large buffer is freed, and a process that relays every message (a POC
server's parent) then keeps its freed message buffers (docs/benchmarks.md, long runs). A site's training process
sets its own thresholds (:func:`fedbrats.runtime.engine.configure_cpu`)."""


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

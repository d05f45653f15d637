"""Show the progress lines of FLARE log files while a run is going."""

import glob
import os
import re
import threading
import time
from typing import Dict, Pattern

PROGRESS = re.compile(
    r"(Round \d+ started|round \d+/\d+:|new best global model|scoring the final|on (testing|validation): mean Dice|"
    r"bad input data|Workflow: \S+ finalizing| ERROR - )"
)

ROUND_DONE = re.compile(r"round (\d+)/(\d+):")


def _restarted(path: str, handle) -> bool:
    """Whether the file at ``path`` was replaced or truncated since ``handle`` read it (FLARE's simulator starts a
    site's log again when the site's process starts)."""
    try:
        stat = os.stat(path)
    except OSError:
        return False
    return stat.st_ino != os.fstat(handle.fileno()).st_ino or stat.st_size < handle.tell()


class LogFollower:
    """Tails every file matching ``pattern`` (files may appear later) and prints lines matching ``PROGRESS``."""

    def __init__(self, pattern: str, label: str, progress: Pattern = PROGRESS):
        self.pattern, self.label, self.progress = pattern, label, progress
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.start_time = time.time()

    def __enter__(self) -> "LogFollower":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop_event.set()
        self.thread.join(timeout=5)

    def _run(self) -> None:
        handles: Dict[str, object] = {}
        while True:
            stopping = self.stop_event.is_set()
            for path in glob.glob(self.pattern):
                handle = handles.get(path)
                if handle is not None and _restarted(path, handle):
                    handle.close()
                    handle = None
                if handle is None:
                    handles[path] = open(path, errors="replace")
            idle = True
            for handle in handles.values():
                for line in iter(handle.readline, ""):
                    idle = False
                    if self.progress.search(line):
                        self._show(line)
            if stopping:
                break
            if idle:
                self.stop_event.wait(0.5)
        for handle in handles.values():
            handle.close()

    def _show(self, line: str) -> None:
        who = re.search(r"identity=([\w.@-]+)", line)
        name = who.group(1).replace("simulator_server", "server") if who else ""
        message = line.split("] - ", 1)[-1].strip()
        elapsed = time.time() - self.start_time
        print(
            f"[{self.label} {elapsed:6.1f} s] {name + ': ' if name else ''}{message}{time_left(message, elapsed)}",
            flush=True,
        )


def time_left(message: str, elapsed: float) -> str:
    """``(about N min left)`` after a site's ``round k/N:`` line, from the time the first k rounds took."""
    found = ROUND_DONE.search(message)
    if not found:
        return ""
    done, total = int(found.group(1)), int(found.group(2))
    return f" (about {elapsed / done * (total - done) / 60:.1f} min of rounds left)" if 0 < done < total else ""

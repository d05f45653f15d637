"""A short real soak in FLARE's simulator: every process sampled at every round's end, FLARE's own time per round."""

import os
import re
from datetime import datetime

import pytest

from fedbrats.research.bench.soak import soak_simulator

pytestmark = pytest.mark.slow
STAMP = r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*"


def stamps(path, what):
    """Times of the log lines of ``path`` matching ``what``."""
    out = []
    for line in open(path):
        found = re.match(STAMP + what, line)
        if found:
            out.append(datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp())
    return out


def test_a_short_simulator_soak_samples_every_process_every_round(tmp_path):
    result = soak_simulator(str(tmp_path), rounds=3, cases=4)
    assert result["rounds_done"] == 3 and len(result["flare_s_per_round"]) == 3
    assert set(result["rss_MiB_per_round"]) == {"server", "site-1", "site-2"}
    for values in result["rss_MiB_per_round"].values():  # a sample of every process at every round's end
        assert len(values) == 3 and all(v is not None and v > 0 for v in values)
    workspace = tmp_path / "sim"
    started = stamps(workspace / "server" / "log.txt", r"Round \d+ started")
    finished = stamps(workspace / "server" / "log.txt", r"Round \d+ finished")
    tasks = [
        [float(t) for t in re.findall(r"round \d+/\d+: .*; task ([\d.]+) s", open(workspace / s / "log.txt").read())]
        for s in ("site-1", "site-2")
    ]
    flare = [round(e - b - max(t[r] for t in tasks), 2) for r, (b, e) in enumerate(zip(started, finished))]
    assert result["flare_s_per_round"] == pytest.approx(flare, abs=0.011)
    assert all(s > 0 for s in flare)  # a round lasts longer than its slowest site's training task
    assert os.path.isfile(workspace / "server" / "simulate_job" / "app_server" / "FL_global_model.pt")

"""Times read from FLARE's logs: when rounds started and finished, how long each train task of a site took."""

import datetime as dt
import re
from typing import List

LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})")
"""The time stamp at the start of every line of a FLARE log."""


def log_times(path: str, pattern: str) -> List[float]:
    out = []
    for line in open(path):
        if re.search(pattern, line):
            stamp = LOG_TIME.match(line)
            if stamp:
                out.append(dt.datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp())
    return out


def task_seconds(site_log: str) -> List[float]:
    """Duration of each train task of a site, as its executor logged it."""
    return [float(m.group(1)) for m in re.finditer(r"round \d+/\d+: .*; task ([\d.]+) s", open(site_log).read())]

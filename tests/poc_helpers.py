"""What the tests of a running POC system share: waiting on a condition, reading the participants' job logs."""

import os
import re
import time

from builders import write_site


def wait_for(condition, timeout, what):
    """The first true value of ``condition()``, polled until ``timeout`` seconds have passed."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def read(path):
    with open(path) as f:
        return f.read()


def job_log(poc, participant, job_id):
    """A participant's log of one job, or '' before the job has started there."""
    path = os.path.join(poc.participant_dir(participant), job_id, "log.txt")
    return read(path) if os.path.exists(path) else ""


def trained_rounds(poc, site, job_id):
    """Rounds a site finished training in a job, from its log: ``round k/N: global model val Dice ...``."""
    return [int(k) for k in re.findall(r"round (\d+)/\d+: global model val Dice", job_log(poc, site, job_id))]


def processes_naming(poc, text):
    """Pids of the POC system's processes whose command line holds ``text`` (e.g. a job id)."""
    pids = []
    for pid in poc.our_processes():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if text in f.read().decode(errors="replace"):
                    pids.append(pid)
        except OSError:
            continue
    return pids


def start_with_tiny_sites(poc, folder):
    """Prepare and start ``poc``, each of its sites with a tiny synthetic data root of its own under ``folder``."""
    poc.prepare()
    for site in poc.sites:
        root = os.path.join(str(folder), f"data-{site}")
        poc.set_site_data(site, root, write_site(root, name=f"{site}.json"))
    poc.start()

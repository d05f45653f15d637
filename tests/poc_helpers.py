"""What the tests of running FLARE systems share: waiting on a condition, reading the participants' job logs, finding
processes."""

import glob
import os
import re
import signal
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


def command_line(pid):
    """A process's arguments and working folder, or None once it has ended."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().decode(errors="replace").split("\0")
        return argv, os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None


def all_processes():
    """Pids of every process on this machine but this one."""
    return [int(e) for e in os.listdir("/proc") if e.isdigit() and int(e) != os.getpid()]


def processes_naming(text, pids):
    """Those of ``pids`` whose command line holds ``text`` or whose working folder lies in ``text``."""
    found = []
    for pid in pids:
        seen = command_line(pid)
        if seen and (text in "\0".join(seen[0]) or seen[1].startswith(text)):
            found.append(pid)
    return found


def kill_site_during_round(poc, site, round_, timeout=240, job_id="*"):
    """Every process of ``site`` in ``poc`` killed 1 s into round ``round_`` (counted from 1 as the sites count; FLARE's
    log counts from 0) of job ``job_id`` (default: the one the server runs): the site's machine gone. Returns the time
    of the kill."""
    started = f"Round {round_ - 1} started."

    def begun():
        logs = glob.glob(os.path.join(poc.root, "poc", "*", "prod_*", "server", job_id, "log.txt"))
        return any(started in read(path) for path in logs)

    wait_for(begun, timeout, f"round {round_}")
    time.sleep(1)  # inside the round: the sites have the task
    # every process of the site (start script, client, job), the start script first: nothing starts it again
    for pid in processes_naming(poc.participant_dir(site), poc.our_processes()):
        os.kill(pid, signal.SIGKILL)
    return time.time()


def start_with_tiny_sites(poc, folder):
    """Prepare and start ``poc``, each of its sites with a tiny synthetic data root of its own under ``folder``."""
    poc.prepare()
    for site in poc.sites:
        root = os.path.join(str(folder), f"data-{site}")
        poc.set_site_data(site, root, write_site(root, name=f"{site}.json"))
    poc.start()

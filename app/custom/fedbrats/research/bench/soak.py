"""``fedbrats bench soak``: a long run with a tiny model, in FLARE's simulator and in a POC system, sampling the
resident memory of the server and of every site process all along; per round: each process's memory at the round's
end and FLARE's own time (the round's duration minus the slowest site's train task).

It checks what a federation running for days needs: memory after round 5 grows by at most 5 percent and FLARE's time
per round does not creep up.
"""

import argparse
import datetime as dt
import glob
import os
import re
import statistics
import sys
import threading
import time
from typing import Dict, List, Optional

from fedbrats.federation.build_job import build_job
from fedbrats.federation.catalog import DEMO_JOB
from fedbrats.prepare.site_specs import REFERENCE_SITES, site_names
from fedbrats.prepare.synthetic import write_sites
from fedbrats.research.bench.flare_logs import log_times, task_seconds
from fedbrats.research.doc_sections import machine, section_head, write_section
from fedbrats.runners.poc import round_trip
from fedbrats.runners.simulate import run_simulator
from fedbrats.runtime.data.datalist import write_json
from fedbrats.runtime.fl.site_data import write_site_settings

SECTION = "## Long runs: memory and FLARE time per round"
TINY_TRAINING = {"crop": [32, 32, 32], "init_filters": 8, "local_steps": 2, "batch_size": 1}
"""A round of a few seconds: the soak is about FLARE and the processes, not about learning."""
GROWTH_FROM_ROUND, GROWTH_WINDOW = 5, 5
GROWTH_LIMIT = 0.05
MIB = 2**20
PARTICIPANT = re.compile(r"prod_\d+/([^/\s]+)")
CLIENT_ARG = re.compile(r"--client (\S+)")


def role(cmdline: str) -> Optional[str]:
    """Which participant a FLARE process is: ``server`` or a site name, ``+ " job"`` for a POC job process."""
    if "simulator_worker" in cmdline:
        found = CLIENT_ARG.search(cmdline)
        return found.group(1) if found else None
    if "simulator.simulator" in cmdline:
        return "server"
    found = PARTICIPANT.search(cmdline)
    if not found or "nvflare" not in cmdline:
        return None
    job = "runner_process" in cmdline or "worker_process" in cmdline
    return found.group(1) + (" job" if job else "")


class MemorySampler(threading.Thread):
    """Samples ``(time, role, RSS bytes)`` of the FLARE processes whose command line holds ``pattern``: the sum over
    a role's processes (a participant may run as several, e.g. the simulator's server)."""

    def __init__(self, pattern: str, interval: float = 0.5):
        super().__init__(daemon=True)
        self.pattern, self.interval = pattern, interval
        self.samples: List[tuple] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            now, totals = time.time(), {}
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    cmdline = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
                    if self.pattern not in cmdline or role(cmdline) is None:
                        continue
                    with open(f"/proc/{pid}/status") as f:
                        rss = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS"))
                except (OSError, StopIteration):
                    continue
                totals[role(cmdline)] = totals.get(role(cmdline), 0) + rss
            self.samples += [(now, name, rss) for name, rss in totals.items()]
            self.done.wait(self.interval)

    def stop(self) -> None:
        self.done.set()
        self.join()


def per_round(samples: List[tuple], round_ends: List[float]) -> Dict[str, List[Optional[float]]]:
    """Each role's RSS (MiB) at the end of every round: its last sample before the round ended."""
    out = {}
    for name in sorted({s[1] for s in samples}):
        mine = [(t, rss) for t, r, rss in samples if r == name]
        out[name] = [_last_before(mine, end) for end in round_ends]
    return out


def _last_before(samples: List[tuple], end: float) -> Optional[float]:
    before = [rss for t, rss in samples if t <= end]
    return round(before[-1] / MIB, 1) if before else None


def growth_ends(values: List[Optional[float]], start: int = GROWTH_FROM_ROUND, window: int = GROWTH_WINDOW):
    """The medians (MiB) of rounds ``start`` (1-based) to ``start + window - 1`` and of the last ``window`` rounds,
    each None where its rounds have no value."""
    first = [v for v in values[start - 1 : start - 1 + window] if v is not None]
    last = [v for v in values[-window:] if v is not None]
    return (statistics.median(first) if first else None, statistics.median(last) if last else None)


def growth(
    values: List[Optional[float]], start: int = GROWTH_FROM_ROUND, window: int = GROWTH_WINDOW
) -> Optional[float]:
    """Relative growth from round ``start`` to the last round, between the medians of :func:`growth_ends`: a round
    whose end caught a process at a passing peak (a validation's buffers) counts at neither end. None without
    enough rounds."""
    first, last = growth_ends(values, start, window)
    if len(values) < start - 1 + 2 * window or first is None or last is None:
        return None
    return round(last / first - 1, 4)


def second_half_growth(values: List[Optional[float]], window: int = GROWTH_WINDOW) -> Optional[float]:
    """Growth over the second half of the run, from the median of ``window`` rounds at its middle to the median of
    its last ``window``: whether memory still climbs late in the run, with single-round peaks left out."""
    known = [v for v in values if v is not None]
    if len(known) < 4 * window:
        return None
    middle = len(known) // 2
    return round(statistics.median(known[-window:]) / statistics.median(known[middle : middle + window]) - 1, 4)


def flare_seconds(server_log: str, site_logs: List[str]) -> List[float]:
    """Per round: its duration minus the slowest site's train task."""
    starts, ends = log_times(server_log, r"Round \d+ started"), log_times(server_log, r"Round \d+ finished")
    tasks = [task_seconds(path) for path in site_logs]
    out = []
    for r, (b, e) in enumerate(zip(starts, ends)):
        slowest = max((t[r] for t in tasks if len(t) > r), default=0.0)
        out.append(round(e - b - slowest, 2))
    return out


def summarise(mode: str, rounds: int, server_log: str, site_logs: List[str], samples: List[tuple]) -> dict:
    ends = log_times(server_log, r"Round \d+ finished")
    memory = per_round(samples, ends)
    flare = flare_seconds(server_log, site_logs)
    tenth = max(len(flare) // 5, 1)
    early, late = flare[1 : 1 + tenth], flare[-tenth:]
    return {
        "mode": mode,
        "rounds": rounds,
        "rounds_done": len(ends),
        "rss_MiB_per_round": memory,
        "rss_growth_after_round_5": {name: growth(values) for name, values in memory.items()},
        "flare_s_per_round": flare,
        "flare_s_early_late": [round(sum(early) / len(early), 2), round(sum(late) / len(late), 2)],
    }


def soak_simulator(work: str, rounds: int, cases: int) -> dict:
    data = os.path.join(work, "data")
    sites = site_names(REFERENCE_SITES)
    if not all(os.path.isfile(os.path.join(data, "datalists", f"{s}.json")) for s in sites):
        write_sites(data, REFERENCE_SITES, cases, "reduced")
    site_data = {s: {"data_root": data, "datalist": os.path.join(data, "datalists", f"{s}.json")} for s in sites}
    overrides = {"num_rounds": rounds, "sites": sites, "min_clients": len(sites), "training": TINY_TRAINING}
    job_dir = build_job(DEMO_JOB, os.path.join(work, "jobs"), overrides)
    workspace = os.path.abspath(os.path.join(work, "sim"))
    sampler = MemorySampler(workspace)
    sampler.start()
    try:
        run_simulator(
            job_dir, workspace, sites, len(sites), write_site_settings(os.path.join(work, "sites.json"), site_data)
        )
    finally:
        sampler.stop()
    site_logs = [os.path.join(workspace, s, "log.txt") for s in sites]
    return summarise("simulator", rounds, os.path.join(workspace, "server", "log.txt"), site_logs, sampler.samples)


def find_log(root: str, pattern: str, folder: str = "") -> Optional[str]:
    """The first ``log.txt`` below ``root`` (inside a folder named ``folder`` when given) matching ``pattern``."""
    paths = glob.glob(
        os.path.join(root, "**", folder, "**", "log.txt") if folder else os.path.join(root, "**", "log.txt"),
        recursive=True,
    )
    for path in sorted(paths):
        if re.search(pattern, open(path, errors="replace").read()):
            return path
    return None


def soak_poc(work: str, rounds: int, cases: int) -> dict:
    root = os.path.abspath(os.path.join(work, "poc"))
    sampler = MemorySampler(root)
    sampler.start()
    try:
        overrides = {"num_rounds": rounds, "training": TINY_TRAINING}
        report = round_trip(root, DEMO_JOB, overrides, cases=cases)
    finally:
        sampler.stop()
    server_log = find_log(report["result_dir"], r"Round \d+ finished") or find_log(root, r"Round \d+ finished")
    site_logs = [find_log(root, r"round \d+/\d+: .*; task", site) for site in site_names(REFERENCE_SITES)]
    return summarise("POC", rounds, server_log, [p for p in site_logs if p], sampler.samples)


def plot(results: List[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(results), 2, figsize=(12, 3.6 * len(results)), squeeze=False)
    for row, result in zip(axes, results):
        for name, values in result["rss_MiB_per_round"].items():
            row[0].plot(range(1, len(values) + 1), values, label=name)
        row[0].axvline(GROWTH_FROM_ROUND, color="grey", lw=0.8, ls=":")
        row[0].set(xlabel="round", ylabel="RSS at the round's end (MiB)", title=f"{result['mode']}: memory")
        row[0].legend(fontsize=8)
        flare = result["flare_s_per_round"]
        row[1].plot(range(1, len(flare) + 1), flare, "o-", ms=3)
        row[1].set(xlabel="round", ylabel="s", title=f"{result['mode']}: FLARE time per round")
        for ax in row:
            ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def to_markdown(result: dict, picture: str) -> str:
    lines = section_head(SECTION, result) + [
        "The CPU demo job with a tiny model (crop 32^3, init_filters 8, 2 local steps a round) and 2 synthetic sites; "
        "the resident memory of every FLARE process sampled twice a second and summed per participant (the simulator's "
        "server runs as 3 processes; a POC participant as its parent process and its job process, listed apart), "
        "taken at the end of each round. FLARE time: a "
        "round's duration minus the slowest site's train task. Target: memory grows by at most "
        f"{GROWTH_LIMIT:.0%} from round {GROWTH_FROM_ROUND} to the last; FLARE time does not creep up. Growth compares "
        f"the median of rounds {GROWTH_FROM_ROUND} to {GROWTH_FROM_ROUND + GROWTH_WINDOW - 1} with the median of the "
        f"last {GROWTH_WINDOW} rounds: a single round's end can catch a site's job process at the passing peak of a "
        "validation (a few hundred MiB for one sample, the spikes in the plot).",
        "",
        f"![soak]({picture})",
        "",
        f"| run | rounds | process | RSS rounds {GROWTH_FROM_ROUND}-{GROWTH_FROM_ROUND + GROWTH_WINDOW - 1} "
        f"(MiB, median) | RSS last {GROWTH_WINDOW} rounds (MiB, median) | growth "
        f"| within target | growth in the second half (medians of {GROWTH_WINDOW} rounds) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in result["runs"]:
        for name, values in run["rss_MiB_per_round"].items():
            g = run["rss_growth_after_round_5"][name]
            start, end = growth_ends(values)
            ok = "-" if g is None else ("yes" if g <= GROWTH_LIMIT else "no")
            shown = "-" if g is None else f"{g:+.1%}"
            late = second_half_growth(values)
            late = "-" if late is None else f"{late:+.1%}"
            lines.append(
                f"| {run['mode']} | {run['rounds_done']} | {name} | {start} | {end} | {shown} | {ok} | {late} |"
            )
    lines += [
        "",
        "| run | FLARE s per round: first fifth (after round 1) | last fifth |",
        "|---|---|---|",
    ]
    for run in result["runs"]:
        early, late = run["flare_s_early_late"]
        lines.append(f"| {run['mode']} | {early} | {late} |")
    lines += ["", "JSON written by the command: " + f"`{result['out']}`", ""]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rounds", type=int, default=50, help="simulator rounds")
    parser.add_argument("--poc-rounds", type=int, default=20, help="POC rounds (0: no POC run)")
    parser.add_argument("--cases", type=int, default=4, help="synthetic cases per site")
    parser.add_argument("--work", default="workspace/soak")
    parser.add_argument("--out", default="docs/benchmarks_soak.json")
    parser.add_argument("--markdown", default="docs/benchmarks.md", help="file whose soak section is (re)written")
    parser.add_argument("--picture", default="docs/benchmarks_soak.png")


def run(args: argparse.Namespace) -> dict:
    result = {
        "command": " ".join(["fedbrats", "bench", "soak"] + sys.argv[3:]),
        "machine": machine(),
        "date": dt.date.today().isoformat(),
        "out": args.out,
        "runs": [],
    }
    print(f"[soak] 1/2 simulator, {args.rounds} rounds; work folder {os.path.abspath(args.work)}", flush=True)
    result["runs"].append(soak_simulator(os.path.join(args.work, "simulator"), args.rounds, args.cases))
    if args.poc_rounds:
        print(f"[soak] 2/2 POC, {args.poc_rounds} rounds", flush=True)
        result["runs"].append(soak_poc(os.path.join(args.work, "poc"), args.poc_rounds, args.cases))
    write_json(args.out, result)
    plot(result["runs"], args.picture)
    picture = os.path.relpath(args.picture, os.path.dirname(os.path.abspath(args.markdown)))
    write_section(args.markdown, SECTION, to_markdown(result, picture))
    for r in result["runs"]:
        print(
            f"[soak] {r['mode']}: growth after round {GROWTH_FROM_ROUND} {r['rss_growth_after_round_5']}, "
            f"FLARE s per round early/late {r['flare_s_early_late']}",
            flush=True,
        )
    print(f"[soak] written to {os.path.abspath(args.out)}, {args.picture} and {args.markdown} ({SECTION[3:]})")
    return result

"""``fedbrats bench scale``: how FLARE's cost per round, the server's memory and the report grow with the number of
sites and with the model's size.

Every run is the product's real server side (ScoredScatterAndGather, the guarded aggregator, in-time selection,
the persistor, cross-site evaluation) in FLARE's simulator, with sites that answer at once
(:class:`~.echo_executor.WeightEchoExecutor`): no data and no training, so a round's duration is FLARE's
and the server's own cost. Serialisation is timed on its own, with FLARE's ``fobs`` on the model's weights.
"""

import argparse
import datetime as dt
import importlib
import json
import os
import sys
import threading
import time
from typing import Dict, List

from nvflare.apis.job_def import ALL_SITES

from fedbrats.evaluation.report import write_report
from fedbrats.federation.catalog import DEMO_JOB, job_definition
from fedbrats.federation.recipe import BratsFedAvgRecipe, add_site_runtime
from fedbrats.research.bench.flare_logs import log_times
from fedbrats.research.doc_sections import machine, section_head, write_section
from fedbrats.runners.simulate import run_simulator
from fedbrats.runtime.constants import REGIONS

SECTION = "## Scaling: number of sites and model size"
REFERENCE_CROP = [224, 224, 144]
REFERENCE_FILTERS = 16
TINY = {"crop": [32, 32, 32], "init_filters": 8}
MIB = 2**20


class EchoRecipe(BratsFedAvgRecipe):
    """The product's job with :class:`WeightEchoExecutor` sites."""

    @staticmethod
    def _add_sites(job, d) -> None:
        from fedbrats.research.bench.echo_executor import WeightEchoExecutor

        executor = WeightEchoExecutor()
        job.to_clients(executor, tasks=executor.task_names)
        add_site_runtime(job, ALL_SITES)
        for module in ("fedbrats.research", "fedbrats.research.bench", "fedbrats.research.bench.echo_executor"):
            source = importlib.import_module(module).__file__
            package = module if source.endswith("__init__.py") else module.rsplit(".", 1)[0]
            job.add_file_to(source, ALL_SITES, dest_dir=package.replace(".", os.sep), app_folder_type="custom")


def process_rss(pattern: str) -> Dict[int, tuple]:
    """``{pid: (is_site_worker, RSS bytes)}`` of the processes whose command line contains ``pattern``."""
    out = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace")
            if pattern not in cmdline:
                continue
            rss = next(int(line.split()[1]) * 1024 for line in open(f"/proc/{pid}/status") if line.startswith("VmRSS"))
        except (OSError, StopIteration):
            continue
        out[int(pid)] = ("simulator_worker" in cmdline, rss)
    return out


class RssSampler(threading.Thread):
    """Peak RSS of the simulator's server process and of its site worker processes, sampled every ``interval``."""

    def __init__(self, pattern: str, interval: float = 0.25):
        super().__init__(daemon=True)
        self.pattern, self.interval = pattern, interval
        self.server_peak = self.site_peak = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            for is_site, rss in process_rss(self.pattern).values():
                if is_site:
                    self.site_peak = max(self.site_peak, rss)
                else:
                    self.server_peak = max(self.server_peak, rss)
            time.sleep(self.interval)


def model_bytes(training: dict) -> int:
    import torch

    from fedbrats.runtime.model import build_model
    from fedbrats.runtime.settings import TrainSettings

    with torch.device("meta"):
        model = build_model(TrainSettings.from_dict(training))
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def echo_run(work: str, sites: int, rounds: int, training: dict, threads: int) -> dict:
    """One simulator run with ``sites`` echo sites; round times from the server log, peak RSS, the report's time."""
    names = [f"site-{i}" for i in range(1, sites + 1)]
    overrides = {"num_rounds": rounds, "sites": names, "min_clients": sites, "training": training}
    recipe = EchoRecipe.of(job_definition(DEMO_JOB), overrides)
    jobs = os.path.join(work, "jobs")
    recipe.export(jobs)
    workspace = os.path.join(work, "sim")
    sampler = RssSampler(workspace)
    sampler.start()
    try:
        wall = run_simulator(os.path.join(jobs, recipe.name), workspace, names, threads, quiet=True)
    finally:
        sampler.done.set()
        sampler.join()
    server_log = os.path.join(workspace, "server", "log.txt")
    starts, ends = log_times(server_log, r"Round \d+ started"), log_times(server_log, r"Round \d+ finished")
    durations = [e - b for b, e in zip(starts, ends)]
    started = time.time()
    report = write_report(workspace, os.path.join(work, "report"))
    return {
        "sites": sites,
        "init_filters": training["init_filters"],
        "crop": training["crop"],
        "model_MiB": round(model_bytes(training) / MIB, 1),
        "rounds": rounds,
        "round_s": round(sum(durations[1:]) / max(len(durations) - 1, 1), 2),
        "round_s_first_last": [round(durations[1], 2), round(durations[-1], 2)] if len(durations) > 1 else [],
        "after_rounds_s": round(started - ends[-1], 1),
        "wall_s": round(wall, 1),
        "server_peak_rss_MiB": round(sampler.server_peak / MIB),
        "site_worker_peak_rss_MiB": round(sampler.site_peak / MIB),
        "report_s": round(time.time() - started, 2),
        "report_models": len(report["models"]),
        "sent_per_round_MiB": round(2 * sites * model_bytes(training) / MIB, 1),
    }


def serialisation(training: dict, repeats: int = 3) -> dict:
    """FLARE's ``fobs`` serialisation of one site's update (the model's weights as numpy arrays in a DXO)."""
    import torch
    from nvflare.apis.dxo import DXO, DataKind
    from nvflare.app_common.decomposers import common_decomposers
    from nvflare.fuel.utils import fobs

    from fedbrats.runtime.model import build_model
    from fedbrats.runtime.settings import TrainSettings

    common_decomposers.register()
    torch.manual_seed(0)
    model = build_model(TrainSettings.from_dict(training))
    weights = {k: v.numpy() for k, v in model.state_dict().items()}
    shareable = DXO(DataKind.WEIGHTS, data=weights).to_shareable()
    dumps, loads = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        data = fobs.dumps(shareable)
        dumps.append(time.perf_counter() - start)
        start = time.perf_counter()
        fobs.loads(data)
        loads.append(time.perf_counter() - start)
    return {
        "init_filters": training["init_filters"],
        "crop": training["crop"],
        "params_M": round(sum(v.size for v in weights.values()) / 1e6, 2),
        "serialised_MiB": round(len(data) / MIB, 1),
        "dumps_s": round(min(dumps), 3),
        "loads_s": round(min(loads), 3),
    }


def linear_fit(xs: List[float], ys: List[float]) -> tuple:
    """Least-squares ``(intercept, slope)``."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0.0
    return my - slope * mx, slope


def projection(result: dict) -> List[dict]:
    """Projected per-round FLARE cost, traffic and server memory of the reference model at 2 and 30 sites.

    Round time = a + b x sites x model MiB, fitted on every echo run (sites and model size); server memory = the
    2-site run's peak plus, per extra site, the per-site memory the tiny runs show beyond their model (connections,
    task records) and one more copy of the model (the in-flight result the server holds).
    """
    runs = result["sites_runs"] + result["model_runs"]
    a, b = linear_fit([r["sites"] * r["model_MiB"] for r in runs], [r["round_s"] for r in runs])
    ref = next(r for r in result["serialisation"] if r["init_filters"] == REFERENCE_FILTERS)
    ref_mib = ref["serialised_MiB"]
    base = next(r for r in result["model_runs"] if r["init_filters"] == REFERENCE_FILTERS and r["sites"] == 2)
    tiny = result["sites_runs"]
    _, per_site = linear_fit([r["sites"] for r in tiny], [r["server_peak_rss_MiB"] for r in tiny])
    overhead = max(per_site - tiny[0]["model_MiB"], 0.0)
    rows = []
    for sites in (2, 30):
        rows.append(
            {
                "sites": sites,
                "model_MiB": ref_mib,
                "round_s": round(a + b * sites * ref_mib, 1),
                "sent_per_round_GiB": round(2 * sites * ref_mib / 1024, 2),
                "transfer_s_at_1_Gbit": round(2 * sites * ref_mib * MIB * 8 / 1e9, 1),
                "server_rss_GiB": round((base["server_peak_rss_MiB"] + (sites - 2) * (overhead + ref_mib)) / 1024, 2),
            }
        )
    result["fit"] = {
        "intercept_s": round(a, 3),
        "s_per_site_MiB": round(b, 5),
        "server_MiB_per_site": round(overhead, 1),
    }
    return rows


def plot(result: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    runs = result["sites_runs"]
    sites = [r["sites"] for r in runs]
    axes[0].plot(sites, [r["round_s"] for r in runs], "o-")
    axes[0].set(xlabel="sites", ylabel="s per round", title=f"FLARE round, init_filters {runs[0]['init_filters']}")
    axes[1].plot(sites, [r["server_peak_rss_MiB"] for r in runs], "o-", label="server")
    axes[1].plot(sites, [r["site_worker_peak_rss_MiB"] for r in runs], "s--", label="site worker")
    axes[1].set(xlabel="sites", ylabel="peak RSS (MiB)", title="memory")
    axes[1].legend()
    ser = result["serialisation"]
    axes[2].plot([r["serialised_MiB"] for r in ser], [r["dumps_s"] for r in ser], "o-", label="dumps")
    axes[2].plot([r["serialised_MiB"] for r in ser], [r["loads_s"] for r in ser], "s--", label="loads")
    for r in ser:
        axes[2].annotate(f"init {r['init_filters']}", (r["serialised_MiB"], r["dumps_s"]))
    axes[2].set(xlabel="update size (MiB)", ylabel="s", title="fobs serialisation of one update")
    axes[2].legend()
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def to_markdown(result: dict, picture: str) -> str:
    lines = section_head(SECTION, result) + [
        "The product's server side (FedAvg with in-time selection, guarded aggregation, persistor, cross-site "
        "evaluation) in FLARE's simulator with one process per site (`-t` = sites; with fewer threads the simulator "
        "starts a new process whenever a thread switches site, which costs more than a round), with sites that "
        "answer every task at once: a round is "
        "FLARE's and the server's own cost (dispatch, polling, serialisation, transfer, aggregation, persisting). "
        "Round time: mean over the rounds after the first. After rounds: final scoring and the cross-site "
        f"evaluation of (sites + 2) models on every site. The report: `fedbrats report` on the run ({len(REGIONS)} "
        "regions, heatmap and curves).",
        "",
        f"![scaling]({picture})",
        "",
        "| sites | init_filters | crop | model (MiB) | sent per round (MiB) | s per round (2nd, last) "
        "| after rounds (s) | server peak RSS (MiB) | site worker peak RSS (MiB) | report (s) | wall (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["sites_runs"] + result["model_runs"]:
        first_last = ", ".join(map(str, r["round_s_first_last"]))
        lines.append(
            f"| {r['sites']} | {r['init_filters']} | {'x'.join(map(str, r['crop']))} | {r['model_MiB']} | "
            f"{r['sent_per_round_MiB']} | {r['round_s']} ({first_last}) | {r['after_rounds_s']} | "
            f"{r['server_peak_rss_MiB']} | {r['site_worker_peak_rss_MiB']} | {r['report_s']} | {r['wall_s']} |"
        )
    lines += [
        "",
        "Serialisation of one site's update with FLARE's `fobs` (best of 3):",
        "",
        "| init_filters | crop | params (M) | serialised (MiB) | dumps (s) | loads (s) |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["serialisation"]:
        lines.append(
            f"| {r['init_filters']} | {'x'.join(map(str, r['crop']))} | {r['params_M']} | {r['serialised_MiB']} | "
            f"{r['dumps_s']} | {r['loads_s']} |"
        )
    fit = result["fit"]
    lines += [
        "",
        f"Projected for the reference model (init_filters {REFERENCE_FILTERS}, crop "
        f"{'x'.join(map(str, REFERENCE_CROP))}): round time = {fit['intercept_s']} s + {fit['s_per_site_MiB']} s "
        "x sites x update MiB (least squares over every run above; on one machine, so transfer is a local "
        "copy); traffic at the server = 2 x sites x update (the global model out, the update back); server "
        f"memory = the 2-site run's peak plus, per extra site, {fit['server_MiB_per_site']} MiB (what each site adds "
        "to the server beyond its model in the tiny runs) and one update. Local training and validation come on top.",
        "",
        "| sites | update (MiB) | FLARE s per round | sent per round (GiB) | transfer at 1 Gbit/s (s) "
        "| server RSS (GiB) |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["projection"]:
        lines.append(
            f"| {r['sites']} | {r['model_MiB']} | {r['round_s']} | {r['sent_per_round_GiB']} | "
            f"{r['transfer_s_at_1_Gbit']} | {r['server_rss_GiB']} |"
        )
    lines += ["", "JSON written by the command:", "", "```json", json.dumps(result, indent=2), "```", ""]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sites", type=int, nargs="+", default=[2, 4, 8, 16], help="numbers of sites (tiny model)")
    parser.add_argument("--init-filters", type=int, nargs="+", default=[8, 16, 32], help="model sizes (2 sites)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--threads", type=int, default=0, help="simulator threads (0: one per site, each site keeps its process)"
    )
    parser.add_argument("--work", default="workspace/bench/scale")
    parser.add_argument("--out", default="workspace/bench/scale.json")
    parser.add_argument("--markdown", default="docs/benchmarks.md", help="file whose scaling section is (re)written")
    parser.add_argument("--picture", default="docs/benchmarks_scaling.png")


def run(args: argparse.Namespace) -> dict:
    progress = "[bench scale]"
    result: Dict[str, object] = {
        "command": " ".join(["fedbrats", "bench", "scale"] + sys.argv[3:]),
        "machine": machine(),
        "date": dt.date.today().isoformat(),
    }
    runs = [(n, TINY) for n in args.sites]
    runs += [(2, {"crop": REFERENCE_CROP, "init_filters": f}) for f in args.init_filters]
    done = []
    for i, (sites, training) in enumerate(runs, 1):
        print(f"{progress} {i}/{len(runs)}: {sites} sites, init_filters {training['init_filters']}", flush=True)
        work = os.path.join(args.work, f"sites{sites}_filters{training['init_filters']}_{training['crop'][0]}")
        done.append(echo_run(work, sites, args.rounds, training, args.threads or sites))
        print(f"{progress} {json.dumps(done[-1])}", flush=True)
    result["sites_runs"], result["model_runs"] = done[: len(args.sites)], done[len(args.sites) :]
    result["serialisation"] = [
        serialisation({"crop": REFERENCE_CROP, "init_filters": f}) for f in sorted({*args.init_filters, 16})
    ]
    result["projection"] = projection(result)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    plot(result, args.picture)
    picture = os.path.relpath(args.picture, os.path.dirname(os.path.abspath(args.markdown)))
    write_section(args.markdown, SECTION, to_markdown(result, picture))
    print(f"{progress} written to {os.path.abspath(args.out)}, {args.picture} and {args.markdown} ({SECTION[3:]})")
    return result

"""End-to-end demo: synthetic HGG-like and LGG-like sites, the demo FedAvg job, the simulator, the report."""

import argparse
import os
import time
from typing import Dict, List, Optional

from ..constants import SITE_GRADES
from .job_builder import build_job
from .jobs import DEMO_JOB, JOBS
from .report import write_report
from .simulate import run_simulator, simulator_log, write_site_settings
from .synthetic.generator import write_sites

EXPECTATION = """\
What to expect: a few rounds on a CPU teach the whole tumour (WT) first; tumour core (TC) and enhancing tumour (ET)
need longer training. How FedAvg compares with centralised and local-only training under the same budget:
docs/results.md (made by `fedbrats study`)."""


def ensure_synthetic_sites(root: str, sites: List[str], cases: int) -> Dict[str, Dict[str, str]]:
    """Reduced-size synthetic sites under ``root`` unless already there; each site's data root and datalist."""
    site_data = {s: {"data_root": root, "datalist": os.path.join(root, "datalists", f"{s}.json")} for s in sites}
    if all(os.path.isfile(d["datalist"]) for d in site_data.values()):
        print(f"[synthetic] data already in {root}", flush=True)
    else:
        print(f"[synthetic] writing {cases} synthetic cases per site to {root}", flush=True)
        write_sites(root, sites, cases, "reduced")
    return site_data


def quickstart(workspace: str, cases: int, rounds: Optional[int], threads: int, job: str = DEMO_JOB) -> dict:
    start = time.time()
    sites = list(SITE_GRADES)
    data_root = os.path.join(workspace, "data")
    print(f"[quickstart] 1/4 synthetic sites in {data_root}", flush=True)
    site_data = ensure_synthetic_sites(data_root, sites, cases)
    print(f"[quickstart] 2/4 building job {job}", flush=True)
    job_dir = build_job(job, os.path.join(workspace, "jobs"), {"num_rounds": rounds})
    settings = write_site_settings(os.path.join(workspace, "sites.json"), site_data)
    sim_dir = os.path.join(workspace, "simulator")
    print("[quickstart] 3/4 running the federation in FLARE's simulator", flush=True)
    run_simulator(job_dir, sim_dir, sites, threads, settings)
    print("[quickstart] 4/4 cross-site evaluation report", flush=True)
    report = write_report(sim_dir, os.path.join(workspace, "report"))
    print(report["markdown"])
    server = os.path.join(sim_dir, "server", "simulate_job")
    print(f"[quickstart] done in {(time.time() - start) / 60:.1f} min")
    print(f"  report:        {report['paths'][0]}")
    print(f"  global models: {os.path.join(server, 'app_server')} (FL_global_model.pt, best_FL_global_model.pt)")
    print(f"  site models:   {os.path.join(sim_dir, '<site>', 'simulate_job', 'app_<site>', 'best_local_model.pt')}")
    print(f"  TensorBoard:   tensorboard --logdir {sim_dir}")
    print(f"  simulator log: {simulator_log(sim_dir)}")
    print(EXPECTATION)
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workspace", default="workspace/quickstart")
    parser.add_argument("--cases", type=int, default=JOBS[DEMO_JOB].synthetic_cases, help="synthetic cases per site")
    parser.add_argument("--rounds", type=int, help="FL rounds (default: the job's, 6 for the demo)")
    parser.add_argument("--threads", type=int, default=2, help="simulator client threads")


def run(args: argparse.Namespace) -> None:
    quickstart(args.workspace, args.cases, args.rounds, args.threads)

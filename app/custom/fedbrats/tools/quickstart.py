"""End-to-end demo: synthetic HGG-like and LGG-like sites, the demo FedAvg job, the simulator, the report."""

import argparse
import os
import time
from typing import Optional

from ..constants import SITE_GRADES
from .job_builder import build_job
from .report import write_report
from .simulate import run_simulator, simulator_log, write_site_settings
from .synthetic.generator import write_sites


def quickstart(workspace: str, cases: int, rounds: Optional[int], threads: int, job: str = "brats_fedavg_demo") -> dict:
    start = time.time()
    sites = list(SITE_GRADES)
    data_root = os.path.join(workspace, "data")
    marker = os.path.join(data_root, "datalists", f"{sites[-1]}.json")
    if os.path.isfile(marker):
        print(f"[quickstart] 1/4 synthetic data already in {data_root}", flush=True)
    else:
        print(f"[quickstart] 1/4 writing {cases} synthetic cases per site to {data_root}", flush=True)
        write_sites(data_root, sites, cases, "reduced")
    print(f"[quickstart] 2/4 building job {job}", flush=True)
    job_dir = build_job(job, os.path.join(workspace, "jobs"), {"num_rounds": rounds})
    site_data = {s: {"data_root": data_root, "datalist": os.path.join(data_root, "datalists", f"{s}.json")} for s in sites}
    settings = write_site_settings(os.path.join(workspace, "sites.json"), site_data)
    sim_dir = os.path.join(workspace, "simulator")
    print("[quickstart] 3/4 running the federation in the nvflare simulator", flush=True)
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
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workspace", default="workspace/quickstart")
    parser.add_argument("--cases", type=int, default=8, help="synthetic cases per site")
    parser.add_argument("--rounds", type=int, help="FL rounds (default: the job's, 6 for the demo)")
    parser.add_argument("--threads", type=int, default=2, help="simulator client threads")


def run(args: argparse.Namespace) -> None:
    quickstart(args.workspace, args.cases, args.rounds, args.threads)

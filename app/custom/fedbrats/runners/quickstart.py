"""End-to-end demo: synthetic HGG-like and LGG-like sites, the demo FedAvg job, the simulator, the report, and
one test case per site segmented with the final global model and scored."""

import argparse
import os
import time
from typing import Dict, Optional, Sequence, Union

from fedbrats.evaluation.evaluate import SUMMARY_MD, evaluate_folder
from fedbrats.evaluation.infer import main as infer_main
from fedbrats.evaluation.report import write_report
from fedbrats.federation.build_job import build_job
from fedbrats.federation.catalog import DEMO_JOB, job_definition
from fedbrats.prepare.site_specs import FORMS, REFERENCE_SITES, SiteSpec, parse_sites
from fedbrats.prepare.synthetic import ensure_synthetic_sites
from fedbrats.runners.simulate import run_simulator, simulator_log
from fedbrats.runtime.data.datalist import load_datalist, resolve_entry
from fedbrats.runtime.data.msd import entry_format
from fedbrats.runtime.fl.site_data import write_site_settings

EXPECTATION = """\
What to expect: the demo's few rounds on a CPU learn the whole tumour (WT) first; tumour core (TC) and enhancing
tumour (ET) need the longer training of the accuracy study. How FedAvg compares with centralised and local-only
training under the same budget: docs/results.md and docs/training.md (made by `fedbrats study`)."""


def segment_and_score(model: str, job: str, site_data: Dict[str, Dict[str, str]], out: str) -> dict:
    """Segment the first test case of every site with ``model`` (``fedbrats infer``) into ``out/predictions`` and
    score it against its label (``fedbrats evaluate``) into ``out/evaluation``; returns the evaluation."""
    cases = {}
    for site in site_data.values():
        case = resolve_entry(load_datalist(site["datalist"], "testing")[0], site["data_root"])
        cases.setdefault(case["case"], case)
    predictions = os.path.join(out, "predictions")
    infer_main([model, "--job", job, "--out", predictions], cases=list(cases.values()))
    references = {name: case["label"] for name, case in cases.items()}
    formats = {name: entry_format(case) for name, case in cases.items()}
    return evaluate_folder(predictions, references, os.path.join(out, "evaluation"), formats)


def quickstart(
    workspace: str,
    cases: int,
    rounds: Optional[int],
    threads: int,
    job: str = DEMO_JOB,
    sites: Sequence[Union[str, SiteSpec]] = REFERENCE_SITES,
) -> dict:
    start = time.time()
    specs = parse_sites(sites)
    names = [s.name for s in specs]
    data_root = os.path.join(workspace, "data")
    print(f"[quickstart] 1/5 synthetic sites {' '.join(map(str, specs))} in {data_root}", flush=True)
    site_data = ensure_synthetic_sites(data_root, specs, cases)
    print(f"[quickstart] 2/5 building job {job}", flush=True)
    overrides = {"num_rounds": rounds, "sites": names, "min_clients": len(names)}
    job_dir = build_job(job, os.path.join(workspace, "jobs"), overrides)
    settings = write_site_settings(os.path.join(workspace, "sites.json"), site_data)
    sim_dir = os.path.join(workspace, "simulator")
    print("[quickstart] 3/5 running the federation in FLARE's simulator", flush=True)
    run_simulator(job_dir, sim_dir, names, threads, settings)
    print("[quickstart] 4/5 cross-site evaluation report", flush=True)
    report = write_report(sim_dir, os.path.join(workspace, "report"))
    print(report["markdown"])
    server = os.path.join(sim_dir, "server", "simulate_job")
    final_model = os.path.join(server, "app_server", "FL_global_model.pt")
    print("[quickstart] 5/5 segmenting one test case per site with the final global model, scoring it", flush=True)
    segmented = os.path.join(workspace, "segmentation")
    evaluation = segment_and_score(final_model, job_dir, site_data, segmented)
    print(f"[quickstart] done in {(time.time() - start) / 60:.1f} min")
    print(f"  report:        {report['paths'][0]} (pictures beside it)")
    print(f"  global models: {os.path.join(server, 'app_server')} (FL_global_model.pt, best_FL_global_model.pt)")
    print(f"  site models:   {os.path.join(sim_dir, '<site>', 'simulate_job', 'app_<site>', 'best_local_model.pt')}")
    print(f"  TensorBoard:   tensorboard --logdir {sim_dir}")
    print(f"  simulator log: {simulator_log(sim_dir)}")
    print(f"  segmented:     {evaluation['predictions']} ({evaluation['n_cases']} test cases, <case>_seg.nii.gz)")
    print(f"  their scores:  {os.path.join(segmented, 'evaluation', SUMMARY_MD)} (evaluation.csv, summary.json)")
    print(EXPECTATION)
    return {**report, "segmentation": evaluation}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workspace", default="workspace/quickstart")
    parser.add_argument(
        "--cases", type=int, default=job_definition(DEMO_JOB).synthetic_cases, help="synthetic cases per site"
    )
    parser.add_argument("--rounds", type=int, help="FL rounds (default: the job's, 6 for the demo)")
    parser.add_argument("--threads", type=int, default=2, help="simulator client threads")
    parser.add_argument(
        "--sites",
        nargs="+",
        default=REFERENCE_SITES,
        metavar="SITE[:GRADE][:PROFILE][:CASES]",
        help=f"the federation's synthetic sites, each {FORMS} (default: {' '.join(REFERENCE_SITES)})",
    )


def run(args: argparse.Namespace) -> None:
    quickstart(args.workspace, args.cases, args.rounds, args.threads, sites=args.sites)

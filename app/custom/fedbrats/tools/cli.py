"""``fedbrats`` command line: one subcommand per task of the product."""

import argparse
import importlib
import logging
import sys

from ..errors import BratsDataError

COMMANDS = {
    "synthetic": (
        "fedbrats.tools.synthetic.generator",
        "write synthetic BraTS-like sites (BraTS or MSD layout) and their datalists",
    ),
    "datalists": ("fedbrats.tools.reference_split", "make the reference site datalists of BraTS 2018"),
    "brats-partition": (
        "fedbrats.tools.institution_split",
        "BraTS 2018 split into sites by institution (one site each, or --sites N grouped), seeded",
    ),
    "msd-datalists": ("fedbrats.tools.msd_split", "site datalists of MSD Task01_BrainTumour from its dataset.json"),
    "check-data": ("fedbrats.tools.check_data", "list every problem of a datalist's cases in one pass (exit 2 if any)"),
    "train": ("fedbrats.tools.central", "train one datalist without FLARE (centralised baseline)"),
    "build-job": ("fedbrats.tools.job_builder", "export a job through the recipe as a native FLARE job folder"),
    "simulate": ("fedbrats.tools.simulate", "run an exported job in FLARE's simulator with progress"),
    "report": ("fedbrats.tools.report", "cross-site evaluation report of a finished job"),
    "infer": ("fedbrats.tools.infer", "segment cases with a trained model: <case>_seg.nii.gz on each case's grid"),
    "evaluate": ("fedbrats.tools.evaluate", "Dice and HD95 per case and region of predictions against references"),
    "model-card": ("fedbrats.tools.model_card", "MONAI-bundle metadata.json (and runnable bundle) of a model"),
    "export": ("fedbrats.tools.export", "export a model to TorchScript and ONNX, checked and timed against PyTorch"),
    "study": (
        "fedbrats.tools.study",
        "accuracy study: centralised vs FedAvg (and fine-tuned at each site) vs local-only, equal step budget",
    ),
    "privacy-cost": ("fedbrats.tools.privacy_cost", "Dice of FedAvg with and without a privacy filter"),
    "quickstart": (
        "fedbrats.tools.quickstart",
        "synthetic sites + demo FedAvg job in the simulator + report + a test case per site segmented and scored",
    ),
    "poc": ("fedbrats.tools.poc", "POC round trip: start server and sites, submit, wait, report, stop"),
    "bench": ("fedbrats.tools.benchmark", "FL overhead, throughput, data pipeline and evaluation benchmarks"),
    "bench-step": ("fedbrats.tools.step_benchmark", "training step time and peak memory per crop"),
    "bench-cache": ("fedbrats.tools.cache_benchmark", "memory of a site's cache of full-size cases, loader crops/s"),
    "soak": ("fedbrats.tools.soak", "a long run (simulator and POC) sampling every FLARE process's memory per round"),
    "bench-scale": ("fedbrats.tools.scale_benchmark", "FLARE's round cost and server memory against sites, model size"),
}


def build_parser(command: str = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module is imported when it is given (start-up stays short)."""
    parser = argparse.ArgumentParser(prog="fedbrats", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(module=module)
        if command in (None, name):
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv=None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv[0] if argv and argv[0] in COMMANDS else None).parse_args(argv)
    try:
        code = importlib.import_module(args.module).run(args)
    except BratsDataError as e:
        print(f"fedbrats {args.command}: bad input: {e}", file=sys.stderr)
        return 2
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())

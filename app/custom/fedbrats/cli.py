"""The ``fedbrats`` command: one subcommand per task, grouped by stage; each lives in the module of its name.

A command ``NAME`` of a group lives in ``<package>.<NAME with - as _>`` and defines ``add_arguments(parser)`` and
``run(args)``; ``fedbrats bench SUB`` runs ``fedbrats.research.bench.<SUB>``. Only the module of the command given is
imported, so the command starts quickly.
"""

import argparse
import importlib
import logging
import sys
from typing import Dict, Optional, Tuple

from fedbrats.runtime.errors import BratsDataError

Command = Tuple[str, str]
"""(package of its module, one line of help)."""

GROUPS: Dict[str, Dict[str, Command]] = {
    "data": {
        "synthetic": ("fedbrats.prepare", "write synthetic BraTS-like sites (BraTS or MSD layout) and their datalists"),
        "profiles": ("fedbrats.prepare", "draw one synthetic case under every scanner profile (a site's acquisition)"),
        "datalists": ("fedbrats.prepare", "remake the reference site datalists of BraTS 2018 (seeded)"),
        "brats-partition": ("fedbrats.prepare", "BraTS 2018 into sites by institution (one each, or --sites N)"),
        "msd-datalists": ("fedbrats.prepare", "site datalists of MSD Task01_BrainTumour from its dataset.json"),
        "check-data": ("fedbrats.prepare", "every problem of a datalist's cases in one pass (exit 2 if any)"),
    },
    "train and run": {
        "quickstart": ("fedbrats.runners", "synthetic sites, the demo job in the simulator, report, a case segmented"),
        "build-job": ("fedbrats.federation", "export a job as a native FLARE job folder"),
        "simulate": ("fedbrats.runners", "run an exported job in FLARE's simulator, showing its rounds"),
        "poc": ("fedbrats.runners", "POC round trip: start server and sites, submit, wait, report, stop"),
        "status": (
            "fedbrats.runners",
            "a running job: round, sites and when each was last heard, validation Dice, time left",
        ),
        "train": ("fedbrats.runners", "train (or fine-tune) on one datalist without FLARE"),
    },
    "evaluate and ship": {
        "report": ("fedbrats.evaluation", "cross-site evaluation report of a finished job"),
        "infer": ("fedbrats.evaluation", "segment cases with a trained model: <case>_seg.nii.gz on each case's grid"),
        "annotate": (
            "fedbrats.runners",
            "correct a case's segmentation with clicks (interactive model); --serve: the same in a local web page",
        ),
        "evaluate": ("fedbrats.evaluation", "Dice and HD95 per case and region of segmentations against references"),
        "clicks": ("fedbrats.evaluation", "Dice against simulated clicks of an interactive model, NoC@85 and NoC@90"),
        "model-card": ("fedbrats.evaluation", "MONAI bundle of a model: metadata.json, inference.json, model.pt"),
        "export": ("fedbrats.evaluation", "TorchScript and ONNX of a model, checked and timed against PyTorch"),
    },
    "measure (results into docs/)": {
        "study": ("fedbrats.research", "accuracy of centralised, federated (every method) and local-only training"),
        "privacy-cost": ("fedbrats.research", "Dice of FedAvg with and without a privacy filter"),
        "bench": ("fedbrats.research", "benchmarks: bench overhead | step | cache | scale | soak | gpu"),
    },
}
BENCH: Dict[str, str] = {
    "overhead": "FLARE's cost against a bare loop, training steps, data pipeline, evaluation time",
    "step": "training step time and peak memory per crop and init_filters",
    "cache": "a site's cache memory of full-size cases and its loader's crops per second",
    "scale": "FLARE's round time and server memory against the number of sites and the model size",
    "soak": "a long simulator and POC run, every FLARE process's memory and FLARE's time per round",
    "gpu": "the GPU path: AMP training step, loader, a simulator job and infer on CUDA (scripts/gpu_check.sh)",
}
COMMANDS: Dict[str, Command] = {name: command for group in GROUPS.values() for name, command in group.items()}


def module_of(command: str, sub: Optional[str] = None) -> str:
    """The module of a command: ``build-job`` -> ``fedbrats.federation.build_job``, ``bench step`` ->
    ``fedbrats.research.bench.step``."""
    name = f"{COMMANDS[command][0]}.{command.replace('-', '_')}"
    return f"{name}.{sub}" if sub else name


def overview() -> str:
    lines = ["Federated brain-tumour segmentation (BraTS, SegResNetVAE) on NVIDIA FLARE and MONAI.", ""]
    width = max(map(len, COMMANDS)) + 2
    for group, commands in GROUPS.items():
        lines.append(f"{group}:")
        lines += [f"  {name:<{width}}{help_text}" for name, (_, help_text) in commands.items()]
        lines.append("")
    lines.append("fedbrats COMMAND --help describes a command.")
    return "\n".join(lines)


def build_parser(argv=()) -> argparse.ArgumentParser:
    """The parser; the arguments of a command are added (its module imported) only when it is the one given."""
    parser = argparse.ArgumentParser(
        prog="fedbrats",
        usage="fedbrats COMMAND [options]",
        description=overview(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, help=argparse.SUPPRESS)
    given = argv[0] if argv else None
    for name, (_, help_text) in COMMANDS.items():
        p = sub.add_parser(name, prog=f"fedbrats {name}", description=help_text)
        if name == "bench":
            add_bench(p, argv[1] if given == name and len(argv) > 1 else None)
        else:
            p.set_defaults(module=module_of(name))
            if given == name:
                importlib.import_module(module_of(name)).add_arguments(p)
    return parser


def add_bench(parser: argparse.ArgumentParser, given: Optional[str]) -> None:
    sub = parser.add_subparsers(dest="bench", metavar="BENCHMARK", required=True)
    for name, help_text in BENCH.items():
        p = sub.add_parser(name, prog=f"fedbrats bench {name}", help=help_text, description=help_text)
        p.set_defaults(module=module_of("bench", name))
        if given == name:
            importlib.import_module(module_of("bench", name)).add_arguments(p)


def main(argv=None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv).parse_args(argv)
    try:
        code = importlib.import_module(args.module).run(args)
    except BratsDataError as e:
        print(f"fedbrats {args.command}: bad input: {e}", file=sys.stderr)
        return 2
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())

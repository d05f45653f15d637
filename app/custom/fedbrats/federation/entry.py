"""What every ``jobs/<name>/job.py`` runs: its recipe with the command line's values, where ``--env`` says.

``--export --export-dir DIR`` (taken by FLARE before these flags are read) writes the native job folder instead of
running it.
"""

import argparse
import inspect
import os
from typing import Callable, Optional

from nvflare.recipe.prod_env import ProdEnv
from nvflare.recipe.run import Run
from nvflare.recipe.spec import ExecEnv

from fedbrats.evaluation.report import RESULTS_FILE, find_file, write_report
from fedbrats.federation.envs import BratsSimEnv, RunningPocEnv, kit_user
from fedbrats.federation.eval_recipe import add_model_arguments, model_overrides
from fedbrats.federation.options import add_job_arguments, overrides_from_args
from fedbrats.federation.recipe import BratsFedAvgRecipe
from fedbrats.federation.resume import resume_definition
from fedbrats.prepare.site_specs import parse_sites

ENVS = ("sim", "poc", "prod")


def parse_args(doc: Optional[str] = None, argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--env",
        choices=ENVS,
        default="sim",
        help="sim: FLARE simulator; poc: the POC system running here; prod: a provisioned system",
    )
    parser.add_argument("--workspace", "-w", default="workspace/sim", help="sim: simulator workspace root")
    parser.add_argument("--threads", "-t", type=int, help="sim: client threads (default: one per site)")
    parser.add_argument("--gpu", help="sim: GPU ids for the clients, e.g. 0,1")
    parser.add_argument("--startup-kit", help="prod: the admin's startup kit folder")
    parser.add_argument("--no-wait", action="store_true", help="poc, prod: submit and return the job id")
    parser.add_argument(
        "--timeout", type=float, default=0.0, help="poc, prod: seconds to wait for the result (0: no limit)"
    )
    add_job_arguments(parser)
    add_model_arguments(parser)
    parser.add_argument(
        "--resume-from",
        metavar="RUN",
        help="the state folder of a run of this job (on the server: run_state/<job id> in its workspace) to resume, "
        "from the round after its last completed one to the planned total (--rounds: a new total)",
    )
    return parser.parse_args(argv)


def make_env(args: argparse.Namespace, recipe: BratsFedAvgRecipe) -> ExecEnv:
    if args.env == "sim":
        return BratsSimEnv(
            clients=recipe.sites,
            site_grades=parse_sites(recipe.definition.synthetic_sites) if recipe.definition.synthetic_sites else None,
            num_threads=args.threads,
            gpu_config=args.gpu,
            workspace_root=args.workspace,
            data_root=recipe.definition.data_root,
            synthetic_cases=recipe.definition.synthetic_cases,
        )
    if args.env == "poc":
        return RunningPocEnv()
    if not args.startup_kit:
        raise SystemExit("--env prod needs --startup-kit: the admin's startup kit of the provisioned system")
    return ProdEnv(startup_kit_location=args.startup_kit, username=kit_user(args.startup_kit))


def finish(run: Run, args: argparse.Namespace) -> None:
    """Wait for the result (unless told not to) and print the cross-site evaluation report."""
    print(f"job id: {run.get_job_id()}")
    if args.env != "sim" and args.no_wait:
        return
    result = run.get_result(timeout=args.timeout)
    if not result:
        print(f"no result yet; status: {run.get_status()}")
        return
    print(f"result: {os.path.abspath(result)}")
    if find_file(result, RESULTS_FILE):
        print(write_report(result)["markdown"])


Recipe = Callable[[Optional[dict]], BratsFedAvgRecipe]
"""A job's ``recipe(overrides)``, as every ``jobs/<name>/job.py`` defines it."""


def run_job(recipe: Recipe, doc: Optional[str] = None, argv=None) -> None:
    """Run (or, with ``--export``, export) the job of ``recipe`` as the command line says."""
    args = parse_args(doc, argv)
    # a job is named by its folder, jobs/<name>/job.py
    name = os.path.basename(os.path.dirname(os.path.abspath(inspect.getfile(recipe))))
    try:
        if args.resume_from:
            if args.models:
                raise ValueError("--resume-from resumes a training run: it takes no --model")
            name = recipe(None).definition.name
            job = BratsFedAvgRecipe.of(resume_definition(args.resume_from, name, overrides_from_args(args)))
        else:
            job = recipe({**overrides_from_args(args), **model_overrides(args)})
        run = job.execute(make_env(args, job))
    except (RuntimeError, ValueError) as e:
        raise SystemExit(f"{name}: {e}") from None
    finish(run, args)

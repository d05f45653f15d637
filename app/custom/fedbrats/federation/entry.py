"""What every ``jobs/<name>/job.py`` runs: its recipe with the command line's values, where ``--env`` says.

``--export --export-dir DIR`` (taken by FLARE before these flags are read) writes the native job folder instead of
running it.
"""

import argparse
import inspect
import os
import sys
from typing import Callable, Optional

from nvflare.recipe.prod_env import ProdEnv
from nvflare.recipe.run import Run
from nvflare.recipe.spec import ExecEnv

from fedbrats.evaluation.outcome import failure_text, server_failure
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


def finish(run: Run, args: argparse.Namespace) -> int:
    """Wait for the result (unless told not to) and print the cross-site evaluation report; returns 1 when the job did
    not finish normally, after a line saying when and why."""
    print(f"job id: {run.get_job_id()}")
    if args.env != "sim" and args.no_wait:
        return 0
    result = run.get_result(timeout=args.timeout)
    status = None if args.env == "sim" else run.get_status()  # the simulator's failures raise in execute
    if not result:
        print(f"no result yet; status: {status}")
        return 0
    print(f"result: {os.path.abspath(result)}")
    failure = server_failure(os.path.join(result, "workspace"), status)
    if find_file(result, RESULTS_FILE) or failure:
        try:
            print(write_report(result, env=args.env, failure=failure)["markdown"])
        except FileNotFoundError:
            pass
    if failure:
        sys.stdout.flush()
        print(f"job {run.get_job_id()} did not finish normally: {failure_text(failure)}", file=sys.stderr)
        return 1
    return 0


Recipe = Callable[[Optional[dict]], BratsFedAvgRecipe]
"""A job's ``recipe(overrides)``, as every ``jobs/<name>/job.py`` defines it."""


def run_job(recipe: Recipe, doc: Optional[str] = None, argv=None) -> None:
    """Run (or, with ``--export``, export) the job of ``recipe`` as the command line says."""
    args = parse_args(doc, argv)
    # a job is named by its folder, jobs/<name>/job.py
    name = os.path.basename(os.path.dirname(os.path.abspath(inspect.getfile(recipe))))
    env = None
    try:
        if args.resume_from:
            if args.models:
                raise ValueError("--resume-from resumes a training run: it takes no --model")
            name = recipe(None).definition.name
            job = BratsFedAvgRecipe.of(resume_definition(args.resume_from, name, overrides_from_args(args)))
        else:
            job = recipe({**overrides_from_args(args), **model_overrides(args)})
        env = make_env(args, job)
        run = job.execute(env)
    except (RuntimeError, ValueError) as e:
        failure = simulation_failure(env)
        message = f"the job did not finish normally: {failure_text(failure)}" if failure else str(e)
        raise SystemExit(f"{name}: {message}") from None
    code = finish(run, args)
    if code:
        raise SystemExit(code)


def simulation_failure(env: Optional[ExecEnv]) -> Optional[dict]:
    """When and why the job of a failed simulator run ended, from the workspace of ``env``; None for another env."""
    if not isinstance(env, BratsSimEnv) or not env.last_run_failed or not env.job_name:
        return None
    return server_failure(os.path.join(env.workspace_root, env.job_name, "server", "simulate_job"), "simulator failed")

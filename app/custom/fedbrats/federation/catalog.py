"""The product's jobs: ``jobs/<name>/job.py``, each a ``recipe(overrides)`` that declares its job's values.

The package carries the same files (``fedbrats/jobs``), so an installed package builds every job without this
repository; ``fedbrats build-job``, the runners and the research commands all take a job from here.
"""

import functools
import importlib.util
import os
from types import ModuleType
from typing import Any, List, Mapping, Optional, Union

from fedbrats.federation.definition import JobDefinition
from fedbrats.federation.eval_recipe import MODELS, BratsEvalRecipe
from fedbrats.federation.recipe import BratsFedAvgRecipe
from fedbrats.federation.resume import resume_definition
from fedbrats.package_data import JOBS_DIR

JOB_SCRIPT = "job.py"
DEMO_JOB = "brats_fedavg_demo"
"""The CPU demo on synthetic sites: what the quickstart, the POC round trip and the research commands run."""
EVAL_JOB = "brats_eval"
"""The evaluation-only job: given models scored on every site (``--model``), no training."""


def job_names() -> List[str]:
    """The jobs the package carries."""
    return sorted(n for n in os.listdir(JOBS_DIR) if os.path.isfile(os.path.join(JOBS_DIR, n, JOB_SCRIPT)))


@functools.cache
def job_module(name: str) -> ModuleType:
    """The ``job.py`` of job ``name``, imported (its ``__main__`` part does not run)."""
    path = os.path.join(JOBS_DIR, name, JOB_SCRIPT)
    if not os.path.isfile(path):
        raise KeyError(f"no job {name!r}; known jobs: {', '.join(job_names())}")
    spec = importlib.util.spec_from_file_location(f"fedbrats_jobs.{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def job_recipe(
    name: str, overrides: Optional[Mapping[str, Any]] = None, resume_from: str = ""
) -> Union[BratsFedAvgRecipe, BratsEvalRecipe]:
    """The recipe of job ``name`` with ``overrides`` (an evaluation job's model files in ``overrides["models"]``);
    with ``resume_from`` (a run's state folder), the job that resumes that run, as its state recorded it."""
    if resume_from:
        if (overrides or {}).get(MODELS):
            raise ValueError("--resume-from resumes a training run: it takes no --model")
        return BratsFedAvgRecipe.of(resume_definition(resume_from, name, overrides))
    return job_module(name).recipe(overrides)


def job_definition(name: str, overrides: Optional[Mapping[str, Any]] = None) -> JobDefinition:
    """The values of job ``name`` with ``overrides``."""
    return job_recipe(name, overrides).definition

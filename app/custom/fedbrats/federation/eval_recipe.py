"""The recipe of an evaluation-only job: given models scored on every site, without training (``brats_eval``).

Server: FLARE's ``CrossSiteModelEval`` without its submit_model task, over
:class:`~fedbrats.runtime.fl.given_models.GivenModelLocator`, which serves the checkpoints the job carries in its
``config/models/``; FLARE's ``ValidationJsonGenerator`` writes the results that ``fedbrats report`` reads. Sites:
:class:`~fedbrats.runtime.fl.executor.BratsExecutor`, its ``validate`` task only. Every model is checked against the
network of the job's training settings when the job is built, and the job carries its weights alone.
"""

import argparse
import os
import re
import tempfile
from typing import Any, Dict, List, Mapping, Optional, Sequence

import torch
from nvflare.apis.job_def import ALL_SITES
from nvflare.app_common.widgets.validation_json_generator import ValidationJsonGenerator
from nvflare.app_common.workflows.cross_site_model_eval import CrossSiteModelEval
from nvflare.job_config.api import FedJob
from nvflare.recipe.spec import Recipe

from fedbrats.evaluation.model_files import fitting_weights
from fedbrats.federation.definition import JobDefinition
from fedbrats.federation.recipe import VALIDATION_TIMEOUT, add_server_settings, add_site_runtime
from fedbrats.package_data import PACKAGE, reference_datalists
from fedbrats.runtime.fl.executor import BratsExecutor
from fedbrats.runtime.fl.given_models import MODELS_FOLDER, GivenModelLocator

MODELS = "models"
"""The overrides' entry of the model files an evaluation job scores (``--model``)."""
TRAINING_ONLY = (
    "num_rounds",
    "send_weight_diff",
    "privacy",
    "privacy_args",
    "algorithm",
    "algorithm_args",
    "wait_time_after_min_received",
    "run_state_dir",
    "resume_from",
    "start_round",
    "init_model",
    "patience",
    "tracking",
    "tracking_uri",
)
"""Job values that only a training job uses: refused when given to an evaluation job."""
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")


class BratsEvalRecipe(Recipe):
    """Scores the model files ``models`` on every site's ``eval_split`` with the sites' validation code and writes the
    cross-site results, without training; each model is named by its file name without extension (``SRV_<name>``
    in the results).

    ``name`` and ``values`` are a :class:`~fedbrats.federation.definition.JobDefinition`'s (the sites, the network
    and validation settings in ``training``, ``eval_split``); ``overrides`` (the command line's) replace them, and
    ``overrides["models"]`` replaces ``models``.
    """

    def __init__(
        self,
        name: str,
        *,
        models: Sequence[str] = (),
        overrides: Optional[Mapping[str, Any]] = None,
        **values,
    ):
        overrides = dict(overrides or {})
        models = overrides.pop(MODELS, None) or models
        if not models:
            raise ValueError(f"{name} scores given models: name each model file with --model")
        refused = sorted(k for k in TRAINING_ONLY if overrides.get(k) is not None)
        if refused:
            raise ValueError(f"{name} trains nothing: {', '.join(refused)} do not apply to it")
        self.definition = d = JobDefinition.from_values(name, values).with_overrides(overrides)
        self.models = named_models(models)
        self._files = tempfile.TemporaryDirectory(prefix="fedbrats-job-")
        """The checked weights of every model, which the job carries, until the recipe is gone."""
        carried = {}
        for model, path in self.models.items():
            carried[model] = os.path.join(self._files.name, f"{model}.pt")
            torch.save({"model": fitting_weights(path, d.settings())}, carried[model])
        fed_job = FedJob(name=d.name, min_clients=d.min_clients, meta_props={"scope": d.scope} if d.scope else None)
        fed_job.set_app_packages([PACKAGE])
        self._add_server(fed_job, d, carried)
        self._add_sites(fed_job, d)
        super().__init__(fed_job)

    @property
    def sites(self) -> List[str]:
        return list(self.definition.sites)

    @staticmethod
    def _add_server(job: FedJob, d: JobDefinition, models: Dict[str, str]) -> None:
        """``models``: name -> a file of the model's weights, which the server app's ``config/models/`` carries."""
        files = {}
        for name, path in models.items():
            job.add_file_to_server(path, dest_dir=MODELS_FOLDER, app_folder_type="config")
            files[name] = os.path.join(MODELS_FOLDER, os.path.basename(path))
        job.to_server(GivenModelLocator(models=files), id="model_locator")
        job.to_server(ValidationJsonGenerator(), id="json_generator")
        evaluation = CrossSiteModelEval(
            model_locator_id="model_locator",
            submit_model_task_name="",  # no site model: only the given ones are scored
            validation_timeout=VALIDATION_TIMEOUT,
        )
        job.to_server(evaluation, id="cross_site_validate")
        add_server_settings(job, d)
        add_site_runtime(job, "server")

    @staticmethod
    def _add_sites(job: FedJob, d: JobDefinition) -> None:
        executor = BratsExecutor(
            training=d.settings().to_dict(), data_root=d.data_root, datalist=d.datalist, eval_split=d.eval_split
        )
        job.to_clients(executor, tasks=[executor.validate_task_name])
        for datalist in reference_datalists():
            job.add_file_to(datalist, ALL_SITES, dest_dir="datalists", app_folder_type="config")
        add_site_runtime(job, ALL_SITES)


def named_models(paths: Sequence[str]) -> Dict[str, str]:
    """Name (the file name without extension) -> absolute path of every model file; refuses two of one name."""
    named = {}
    for path in paths:
        path = os.path.abspath(path)
        name = os.path.splitext(os.path.basename(path))[0]
        if not MODEL_NAME.fullmatch(name):
            raise ValueError(f"{path}: a model is named by its file name, which may hold only letters, digits, . _ + -")
        if name in named:
            raise ValueError(
                f"two models named {name}: {named[name]} and {path}; a model is named by its file name: copy one "
                "under another name"
            )
        named[name] = path
    return named


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``--model``: the model files an evaluation job scores."""
    parser.add_argument(
        "--model",
        dest="models",
        action="extend",
        nargs="+",
        metavar="MODEL",
        help="brats_eval: a model file to score (repeatable): a .pt with a 'model' entry (FLARE's FL_global_model.pt, "
        "a site's best_local_model.pt, fedbrats train's) or a bare state dict; named by its file name",
    )


def model_overrides(args: argparse.Namespace) -> Dict[str, List[str]]:
    """The overrides' ``models`` entry of the command line's ``--model`` files; empty without any."""
    models = getattr(args, "models", None)
    return {MODELS: [os.path.abspath(m) for m in models]} if models else {}

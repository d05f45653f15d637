"""The recipe that writes every job of the product, built on FLARE's Job API (``FedJob``) and ``Recipe``.

Server: FedAvg (:class:`~fedbrats.runtime.fl.fedavg.ScoredScatterAndGather`, which also scores the final
global model; SCAFFOLD's workflow for ``scaffold``, FLARE's FedOpt shareable generator for ``fedopt``) over
:class:`~fedbrats.runtime.fl.guarded_aggregator.GuardedAggregator`, the case-weighted in-time
selection of the best global model, the PyTorch persistor, the run's state kept for a resume
(:class:`~fedbrats.runtime.fl.run_state_keeper.RunStateKeeper`) and the cross-site evaluation. Sites:
:class:`~fedbrats.runtime.fl.executor.BratsExecutor` and the job's privacy filter on its training results. The job's
``custom/`` holds a real copy of the site runtime, its ``config/datalists/`` the reference datalists.
"""

import os
import tempfile
from typing import Any, List, Mapping, Optional

import torch
from nvflare.apis.analytix import ANALYTIC_EVENT_TYPE
from nvflare.apis.dxo import DataKind
from nvflare.apis.fl_constant import ConfigVarName
from nvflare.apis.job_def import ALL_SITES, JobMetaKey
from nvflare.app_common.app_constant import AlgorithmConstants, AppConstants
from nvflare.app_common.shareablegenerators.full_model_shareable_generator import FullModelShareableGenerator
from nvflare.app_common.widgets.convert_to_fed_event import ConvertToFedEvent
from nvflare.app_common.widgets.validation_json_generator import ValidationJsonGenerator
from nvflare.app_opt.pt.fedopt import PTFedOptModelShareableGenerator
from nvflare.app_opt.pt.file_model_locator import PTFileModelLocator
from nvflare.app_opt.pt.file_model_persistor import PTFileModelPersistor
from nvflare.job_config.api import FedJob
from nvflare.job_config.defs import FilterType
from nvflare.recipe.spec import Recipe
from nvflare.recipe.utils import add_experiment_tracking, ensure_config_type_dict

from fedbrats.evaluation.model_files import fitting_weights
from fedbrats.federation.definition import JobDefinition
from fedbrats.federation.privacy import NONE, kept_at_sites, privacy_filter
from fedbrats.package_data import PACKAGE, reference_datalists, site_runtime_files
from fedbrats.runtime.fl.algorithms import FEDOPT, SCAFFOLD, algorithm_arguments
from fedbrats.runtime.fl.cross_site_eval import LiveSitesCrossSiteModelEval
from fedbrats.runtime.fl.executor import BratsExecutor
from fedbrats.runtime.fl.fedavg import ScoredScatterAndGather, ScoredScatterAndGatherScaffold
from fedbrats.runtime.fl.guarded_aggregator import GuardedAggregator
from fedbrats.runtime.fl.model_selector import CaseWeightedModelSelector
from fedbrats.runtime.fl.run_state_keeper import RunStateKeeper
from fedbrats.runtime.model import BratsSegResNetVAE, build_model
from fedbrats.runtime.run_state import GLOBAL_MODEL_FILE
from fedbrats.runtime.settings import TrainSettings

INITIAL_MODEL = "initial_model/initial_global_model.pt"
"""Where a job started from a given model (``init_model``) carries it, in the server app's ``custom/``."""
SUBMIT_MODEL_TIMEOUT = 3600
VALIDATION_TIMEOUT = 21600
"""Seconds the cross-site evaluation waits for a site's best model, and for its scores of all models."""


class BratsFedAvgRecipe(Recipe):
    """FedAvg (or the job's ``algorithm``) of SegResNetVAE on BraTS sites, with in-time selection of the best global
    model and cross-site evaluation; ``brats_central`` is the same recipe with one site, ``site-All``.

    ``name`` and ``values`` are a :class:`~fedbrats.federation.definition.JobDefinition`'s; ``overrides`` (the
    command line's, a resumed run's) replace them. :meth:`of` builds the recipe of a definition.
    """

    def __init__(self, name: str, *, overrides: Optional[Mapping[str, Any]] = None, **values):
        if (overrides or {}).get("models"):
            raise ValueError(f"{name} trains its own models; --model names the models that brats_eval scores")
        self.definition = JobDefinition.from_values(name, values).with_overrides(overrides)
        meta = {"scope": self.definition.scope} if self.definition.scope else {}
        if self.definition.resource_spec():  # what each site's FLARE resource manager must give the job
            meta[JobMetaKey.RESOURCE_SPEC] = self.definition.resource_spec()
        fed_job = FedJob(name=self.definition.name, min_clients=self.definition.min_clients, meta_props=meta or None)
        fed_job.set_app_packages([PACKAGE])
        self._files = tempfile.TemporaryDirectory(prefix="fedbrats-job-")
        """What the job carries that the recipe writes (the checked initial model), until the recipe is gone."""
        self._add_server(fed_job, self.definition, self._files.name)
        self._add_sites(fed_job, self.definition)
        super().__init__(fed_job)
        # the sites' per-round figures, recorded on the server by FLARE's receiver (one run per site)
        tracking = {"tracking_uri": self.definition.tracking_uri} if self.definition.tracking_uri else {}
        if self.definition.tracking == "mlflow":
            tracking["kw_args"] = {"experiment_name": self.definition.name, "run_name": self.definition.name}
        add_experiment_tracking(self, self.definition.tracking, tracking)

    @classmethod
    def of(cls, definition: JobDefinition, overrides: Optional[Mapping[str, Any]] = None) -> "BratsFedAvgRecipe":
        """The recipe of ``definition`` (with ``overrides``)."""
        return cls(definition.name, overrides=overrides, **definition.values())

    @property
    def sites(self):
        return list(self.definition.sites)

    @staticmethod
    def _add_server(job: FedJob, d: JobDefinition, files: str) -> None:
        # the global model, one component that the persistor loads and FedOpt's server optimiser updates
        with torch.device("meta"):
            job.to_server(BratsSegResNetVAE(**d.settings().model_kwargs()), id="model")
        job.to_server(
            PTFileModelPersistor(model="model", source_ckpt_file_full_name=initial_model(job, d, files)), id="persistor"
        )
        job.to_server(shareable_generator(d), id="shareable_generator")
        kind = DataKind.WEIGHT_DIFF if d.sends_weight_diff else DataKind.WEIGHTS
        if d.algorithm == SCAFFOLD:  # the sites' weights and the change of their controls, averaged alike
            kind = {AppConstants.MODEL_WEIGHTS: kind, AlgorithmConstants.SCAFFOLD_CTRL_DIFF: DataKind.WEIGHT_DIFF}
        aggregator = GuardedAggregator(
            min_clients=d.min_clients,
            allowed_missing=kept_at_sites(d.privacy, d.privacy_args),
            expected_data_kind=kind,
            aggregation_weights={site: 1.0 for site in d.sites},
        )
        job.to_server(aggregator, id="aggregator")
        job.to_server(CaseWeightedModelSelector(), id="model_selector")
        job.to_server(PTFileModelLocator(pt_persistor_id="persistor"), id="model_locator")
        job.to_server(ValidationJsonGenerator(), id="json_generator")
        keeper = RunStateKeeper(
            job_name=d.name,
            job_values=d.values(),
            num_rounds=d.num_rounds,
            state_root=d.run_state_dir,
            resume_from=d.resume_from,
        )
        job.to_server(keeper, id="run_state")
        workflow = ScoredScatterAndGatherScaffold if d.algorithm == SCAFFOLD else ScoredScatterAndGather
        fedavg = workflow(
            min_clients=d.min_clients,
            num_rounds=d.num_rounds - d.start_round,
            start_round=d.start_round,
            wait_time_after_min_received=d.wait_time_after_min_received,
            aggregator_id="aggregator",
            persistor_id="persistor",
            shareable_generator_id="shareable_generator",
            model_selector_id="model_selector",
            train_timeout=0,
            patience=d.patience,
        )
        job.to_server(fedavg, id="fedavg")
        evaluation = LiveSitesCrossSiteModelEval(
            model_locator_id="model_locator",
            # with a privacy filter, no site sends its unfiltered local model
            submit_model_task_name=AppConstants.TASK_SUBMIT_MODEL if d.privacy == NONE else "",
            submit_model_timeout=SUBMIT_MODEL_TIMEOUT,
            validation_timeout=VALIDATION_TIMEOUT,
        )
        job.to_server(evaluation, id="cross_site_validate")
        add_server_settings(job, d)
        add_site_runtime(job, "server")

    @staticmethod
    def _add_sites(job: FedJob, d: JobDefinition) -> None:
        executor = BratsExecutor(
            training=d.settings().to_dict(),
            data_root=d.data_root,
            datalist=d.datalist,
            eval_split=d.eval_split,
            send_weight_diff=d.sends_weight_diff,
            local_vars=kept_at_sites(d.privacy, d.privacy_args),
            algorithm=d.algorithm,
            algorithm_args=dict(d.algorithm_args),
        )
        job.to_clients(executor, tasks=executor.task_names)
        # the figures the executor records each round go to the server as federated events
        job.to_clients(ConvertToFedEvent(events_to_convert=[ANALYTIC_EVENT_TYPE]), id="analytics_to_server")
        privacy = privacy_filter(d.privacy, d.privacy_args, tensor_names(d.settings()))
        if privacy is not None:
            job.to_clients(privacy, filter_type=FilterType.TASK_RESULT, tasks=[executor.train_task_name])
        for datalist in reference_datalists():
            job.add_file_to(datalist, ALL_SITES, dest_dir="datalists", app_folder_type="config")
        add_site_runtime(job, ALL_SITES)


def initial_model(job: FedJob, d: JobDefinition, files: str) -> Optional[str]:
    """The checkpoint the global model starts from, as the persistor reads it: a resumed run's last global model (a
    server-side path), or ``init_model`` checked against the network and carried in the server app (relative to its
    ``custom/``); None: the network's random weights."""
    if d.resume_from:
        return os.path.join(d.resume_from, GLOBAL_MODEL_FILE)
    if not d.init_model:
        return None
    path = os.path.join(files, os.path.basename(INITIAL_MODEL))
    torch.save({"model": fitting_weights(d.init_model, d.settings())}, path)
    job.add_file_to(path, "server", dest_dir=os.path.dirname(INITIAL_MODEL), app_folder_type="custom")
    return INITIAL_MODEL


def shareable_generator(d: JobDefinition):
    """How the server makes the next global model of the averaged update: added to it (FLARE's full-model generator),
    or, for ``fedopt``, one step of a server-side optimiser (FLARE's FedOpt generator, on the ``model`` component)."""
    if d.algorithm != FEDOPT:
        return FullModelShareableGenerator()
    args = algorithm_arguments(d.algorithm, d.algorithm_args)
    optimizer_args = {"lr": args["lr"]}
    if args["optimizer"] == "torch.optim.SGD":
        optimizer_args["momentum"] = args["momentum"]
    optimizer = ensure_config_type_dict({"path": args["optimizer"], "args": optimizer_args})
    return PTFedOptModelShareableGenerator(optimizer_args=optimizer, source_model="model", device="cpu")


def tensor_names(settings: TrainSettings) -> List[str]:
    """Names of the model's tensors, from a model built without memory (on the meta device)."""
    with torch.device("meta"):
        return list(build_model(settings).state_dict())


def add_server_settings(job: FedJob, d: JobDefinition) -> None:
    """The server config values every job sets: how often sites ask for tasks, and how soon a lost site stops holding
    up a task."""
    # no heart_beat_timeout here: the server drops a silent site by the value in its own local/resources.json
    # (fedbrats.runners.poc.HEART_BEAT_TIMEOUT); a job's value only reaches the job's process, which drops none
    job.to_server({"server": {"task_request_interval": d.task_request_interval}})
    # read by FLARE's workflows from the job's server config
    job.to_server(
        {
            ConfigVarName.DEAD_CLIENT_GRACE_PERIOD: d.dead_client_grace_period,
            ConfigVarName.DEAD_CLIENT_CHECK_LEAD_TIME: d.dead_client_check_lead_time,
        }
    )


def add_site_runtime(job: FedJob, target: str) -> None:
    """A real copy of the modules the server and the sites run (not the tools) into the app's ``custom/``."""
    for source, folder in site_runtime_files():
        job.add_file_to(source, target, dest_dir=folder, app_folder_type="custom")

"""A job's definition: every value of a FLARE job of the product, plain and JSON-able.

Each ``jobs/<name>/job.py`` declares its job's values; the run state records them, so that a resumed run rebuilds
the same job. Training values are :class:`fedbrats.runtime.settings.TrainSettings` fields; what a job leaves out
keeps the setting's default. :mod:`fedbrats.federation.recipe` turns a definition into a FLARE job.
"""

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple

from fedbrats.federation.privacy import NEEDS_WEIGHT_DIFF, NONE, privacy_arguments
from fedbrats.prepare.site_specs import site_names
from fedbrats.runtime.constants import SITE_GRADES, SPLITS
from fedbrats.runtime.fl.algorithms import FEDAVG, SENDS_WEIGHT_DIFF, algorithm_arguments
from fedbrats.runtime.settings import TrainSettings

TRACKERS = ("tensorboard", "mlflow")
"""FLARE's receivers the server records the sites' figures with."""

EVERY_SITE = "*"
"""In ``gpus`` overrides: the request of every site of the job that names none of its own."""

FEDERATION = tuple(SITE_GRADES)
"""The reference federation: site-1 (high-grade gliomas) and site-2 (low-grade)."""


@dataclass(frozen=True)
class JobDefinition:
    """A federated job of SegResNetVAE (FedAvg or another method) with in-time best-model selection and cross-site
    evaluation."""

    name: str
    description: str = ""
    sites: Tuple[str, ...] = FEDERATION
    min_clients: int = len(FEDERATION)
    num_rounds: int = 600
    eval_split: str = "testing"
    """Split the cross-site evaluation scores every model on."""
    datalist: str = ""
    """Datalist of every site, relative to its data root or the job's config; empty: ``datalists/<site>.json``."""
    training: Mapping[str, Any] = field(default_factory=dict)
    algorithm: str = FEDAVG
    """Aggregation method (:mod:`fedbrats.runtime.fl.algorithms`): ``fedavg``, ``fedprox``, ``fedopt``, ``scaffold`` or
    ``ditto`` (personalised: each site's own model goes through the cross-site evaluation)."""
    algorithm_args: Mapping[str, Any] = field(default_factory=dict)
    """Arguments of the method over :data:`fedbrats.runtime.fl.algorithms.ALGORITHM_DEFAULTS`."""
    synthetic_sites: Tuple[str, ...] = ()
    """Each site's synthetic data as ``NAME[:GRADE][:PROFILE][:CASES]`` (:mod:`fedbrats.prepare.site_specs`), what a
    simulator run without a data root makes; empty: the sites' own grades."""
    data_root: str = ""
    """Data root of sites that have no site-local setting; a definition leaves it empty (the job holds no path)."""
    send_weight_diff: bool = False
    privacy: str = NONE
    """FLARE filter every site applies to its training results: ``none``, ``svt`` (differential privacy, Li et al.
    2019), ``percentile`` (largest changes only, clipped) or ``exclude`` (some tensors stay at the sites). With a
    filter, the sites' local models stay at the sites: the cross-site evaluation scores the global models only."""
    privacy_args: Mapping[str, Any] = field(default_factory=dict)
    """Arguments of the privacy filter over :data:`fedbrats.federation.privacy.PRIVACY_DEFAULTS`."""
    scope: str = ""
    """Privacy scope of the sites' ``local/privacy.json`` the job asks for; empty: each site's default scope."""
    wait_time_after_min_received: int = 0
    """Seconds FedAvg waits for the other sites' results once ``min_clients`` have answered in a round. With fewer
    ``min_clients`` than sites, 0 drops the result of a healthy site that is a little slower every round: give it
    more than the usual spread between the sites' rounds. A lost site costs at most this per round until the server
    deems it disconnected (``dead_client_grace_period``)."""
    dead_client_grace_period: float = 5.0
    """Seconds between the report that a site's job process is gone and the job counting the site as disconnected,
    after which no task waits for it (FLARE's default is 60; docs/deployment.md, "When a site fails")."""
    dead_client_check_lead_time: float = 5.0
    """Seconds a new task waits before it may end because every site it still waits for is disconnected (FLARE's
    default is 30): each task after a loss waits at least this long."""
    task_request_interval: float = 0.2
    """Seconds between the sites' requests for a task (FLARE's default is 2)."""
    synthetic_cases: int = 0
    """Synthetic cases per site the job runs on when no data root is given; 0: real BraTS data only."""
    run_state_dir: str = ""
    """Server-side folder of the runs' states (:mod:`fedbrats.runtime.run_state`); empty: ``run_state/`` in the server's
    workspace."""
    resume_from: str = ""
    """Server-side state folder of an earlier run of this job that this one resumes (``--resume-from``)."""
    start_round: int = 0
    """First round of a resumed run; ``num_rounds`` stays the planned total."""
    init_model: str = ""
    """Checkpoint of the initial global model (``--init-model``), checked against the network when the job is built
    and carried in the server's app; empty: the network's random initial weights."""
    patience: int = 0
    """Stop after this many rounds without a new best global model (the cross-site evaluation still runs); 0: run
    every round."""
    tracking: str = "tensorboard"
    """FLARE receiver that records the sites' per-round figures on the server: ``tensorboard`` (``tb_events/<site>``
    in the server's run folder) or ``mlflow`` (one run per site)."""
    gpus: Mapping[str, int] = field(default_factory=dict)
    """GPUs each site asks its resource manager for (site -> count; a site left out asks for none), in the job's
    ``meta.json`` ``resource_spec``: a site whose FLARE resource manager cannot give them refuses the job."""
    gpu_memory: float = 0.0
    """GiB of memory per GPU the sites of ``gpus`` ask for (0: none named)."""
    tracking_uri: str = ""
    """MLflow tracking URI, e.g. a consortium's MLflow server; empty: an SQLite store in the server's run folder."""

    def values(self) -> Dict[str, Any]:
        """The definition as plain JSON-able values, without its name; :meth:`from_values` reads them back."""
        values = dataclasses.asdict(self)
        values.pop("name")
        values["sites"] = list(self.sites)
        values["synthetic_sites"] = list(self.synthetic_sites)
        values["gpus"] = dict(self.gpus)
        return values

    def resource_spec(self) -> Dict[str, Dict[str, float]]:
        """The ``resource_spec`` of the job's ``meta.json``: what each site's resource manager must give it."""
        spec = {}
        for site, count in self.gpus.items():
            if count:
                spec[site] = {
                    "num_of_gpus": count,
                    **({"mem_per_gpu_in_GiB": self.gpu_memory} if self.gpu_memory else {}),
                }
        return spec

    @classmethod
    def from_values(cls, name: str, values: Mapping[str, Any]) -> "JobDefinition":
        known = {f.name for f in dataclasses.fields(cls)} - {"name"}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown job values {unknown}")
        sites = tuple(values.get("sites", FEDERATION))
        job = cls(name, **{**values, "sites": sites, "synthetic_sites": tuple(values.get("synthetic_sites", ()))})
        job.validate()
        return job

    def settings(self) -> TrainSettings:
        return TrainSettings.from_dict(self.training)

    @property
    def sends_weight_diff(self) -> bool:
        """Sites send weight differences: asked for, or needed by the privacy filter or the aggregation method."""
        return self.send_weight_diff or self.privacy in NEEDS_WEIGHT_DIFF or self.algorithm in SENDS_WEIGHT_DIFF

    def with_overrides(self, overrides: Optional[Mapping[str, Any]] = None) -> "JobDefinition":
        """This job with some values replaced; ``training`` fields are merged, None values ignored."""
        changes = {k: v for k, v in dict(overrides or {}).items() if v is not None}
        unknown = sorted(set(changes) - OVERRIDABLE)
        if unknown:
            raise ValueError(f"unknown job values {unknown}; known: {sorted(OVERRIDABLE)}")
        training = {k: v for k, v in (changes.pop("training", None) or {}).items() if v is not None}
        changes["training"] = self.settings().replace(**training).to_dict() if training else dict(self.training)
        for name in ("sites", "synthetic_sites"):
            if name in changes:
                changes[name] = tuple(changes[name])
        if "sites" in changes and "synthetic_sites" not in changes:
            changes["synthetic_sites"] = ()
        if "gpus" in changes and EVERY_SITE in changes["gpus"]:
            every = changes["gpus"][EVERY_SITE]
            own = {k: v for k, v in changes["gpus"].items() if k != EVERY_SITE}
            changes["gpus"] = {**{site: every for site in changes.get("sites", self.sites)}, **own}
        job = dataclasses.replace(self, **changes)
        job.validate()
        return job

    def validate(self) -> None:
        self.settings()
        if self.eval_split not in SPLITS:
            raise ValueError(f"eval_split must be one of {SPLITS}, got {self.eval_split!r}")
        if not self.sites or not 1 <= self.min_clients <= len(self.sites):
            raise ValueError(f"min_clients must be between 1 and the number of sites {list(self.sites)}")
        if self.num_rounds < 1 or self.task_request_interval <= 0:
            raise ValueError("num_rounds must be at least 1 and task_request_interval positive")
        if not 0 <= self.start_round < self.num_rounds or (self.start_round and not self.resume_from):
            raise ValueError("start_round must be below num_rounds, and only a resumed run (resume_from) has one")
        if min(self.wait_time_after_min_received, self.dead_client_grace_period, self.dead_client_check_lead_time) < 0:
            raise ValueError(
                "wait_time_after_min_received, dead_client_grace_period and dead_client_check_lead_time must not be "
                "negative"
            )
        unknown = sorted(set(self.gpus) - set(self.sites))
        if unknown or any(not isinstance(n, int) or n < 0 for n in self.gpus.values()) or self.gpu_memory < 0:
            raise ValueError(
                f"gpus must give a count of 0 or more to sites of the job {list(self.sites)} (got {dict(self.gpus)}), "
                "and gpu_memory must not be negative"
            )
        if self.patience < 0:
            raise ValueError("patience must not be negative")
        if self.init_model and self.resume_from:
            raise ValueError("init_model and resume_from exclude each other: a resumed run starts from its own model")
        if self.tracking not in TRACKERS:
            raise ValueError(f"tracking must be one of {TRACKERS}, got {self.tracking!r}")
        if self.tracking_uri and self.tracking != "mlflow":
            raise ValueError("tracking_uri is MLflow's: give it with tracking mlflow")
        privacy_arguments(self.privacy, self.privacy_args)
        algorithm_arguments(self.algorithm, self.algorithm_args)
        if self.synthetic_sites:
            if site_names(self.synthetic_sites) != list(self.sites):
                raise ValueError(f"synthetic_sites {list(self.synthetic_sites)} must name the sites {list(self.sites)}")


OVERRIDABLE = frozenset(
    (
        "num_rounds",
        "min_clients",
        "sites",
        "data_root",
        "eval_split",
        "send_weight_diff",
        "privacy",
        "privacy_args",
        "scope",
        "wait_time_after_min_received",
        "dead_client_grace_period",
        "dead_client_check_lead_time",
        "task_request_interval",
        "training",
        "algorithm",
        "algorithm_args",
        "synthetic_sites",
        "run_state_dir",
        "resume_from",
        "start_round",
        "init_model",
        "patience",
        "tracking",
        "tracking_uri",
        "gpus",
        "gpu_memory",
    )
)

"""A site for benchmarks of FLARE and the server: it answers every task of the product's job at once, with no data
and no training, so what is left of a round is dispatch, transfer, serialisation, aggregation and persisting."""

import os
from typing import Dict, List

import numpy as np
from nvflare.apis.dxo import DXO, DataKind, MetaKey, from_shareable
from nvflare.apis.executor import Executor
from nvflare.apis.fl_constant import ReturnCode
from nvflare.apis.fl_context import FLContext
from nvflare.apis.shareable import Shareable, make_reply
from nvflare.apis.signal import Signal
from nvflare.app_common.app_constant import AppConstants

from fedbrats.runtime.constants import (
    DICE_METRICS,
    HD95_METRICS,
    MEAN_DICE,
    N_CASES,
    SENSITIVITY_METRICS,
    SPECIFICITY_METRICS,
)

LAST_MODEL = "echo_last_model.npz"
"""Where the site keeps the last global model it received (in its app folder): its "best local model"."""
ECHO_DICE = 0.5
"""Dice the echo site reports for every model and region."""


def echo_metrics() -> Dict[str, object]:
    """Metrics shaped like a real site's validation of one case."""
    metrics: Dict[str, object] = {name: ECHO_DICE for name in DICE_METRICS}
    metrics.update({name: 1.0 for name in HD95_METRICS + SENSITIVITY_METRICS + SPECIFICITY_METRICS})
    metrics.update({MEAN_DICE: ECHO_DICE, N_CASES: 1})
    return metrics


class WeightEchoExecutor(Executor):
    """Returns the global model it receives as its update (one step), scores every model with :data:`ECHO_DICE`
    and submits the last global model it received as its best local model (kept on disk, as a real site keeps its
    best model: the simulator may run a site's later tasks in another process)."""

    def __init__(
        self,
        train_task_name: str = AppConstants.TASK_TRAIN,
        submit_model_task_name: str = AppConstants.TASK_SUBMIT_MODEL,
        validate_task_name: str = AppConstants.TASK_VALIDATION,
        score_task_name: str = "validate_global",
    ):
        super().__init__()
        self.train_task_name, self.submit_model_task_name = train_task_name, submit_model_task_name
        self.validate_task_name, self.score_task_name = validate_task_name, score_task_name

    @property
    def task_names(self) -> List[str]:
        return [self.train_task_name, self.submit_model_task_name, self.validate_task_name, self.score_task_name]

    def execute(self, task_name: str, shareable: Shareable, fl_ctx: FLContext, abort_signal: Signal) -> Shareable:
        last_model = os.path.join(fl_ctx.get_engine().get_workspace().get_app_dir(fl_ctx.get_job_id()), LAST_MODEL)
        if task_name == self.train_task_name:
            weights = from_shareable(shareable).data
            np.savez(last_model, **weights)
            meta = {MetaKey.NUM_STEPS_CURRENT_ROUND: 1, MetaKey.INITIAL_METRICS: echo_metrics()}
            return DXO(DataKind.WEIGHTS, data=weights, meta=meta).to_shareable()
        if task_name in (self.validate_task_name, self.score_task_name):
            return DXO(DataKind.METRICS, data=echo_metrics()).to_shareable()
        if task_name == self.submit_model_task_name:
            if not os.path.isfile(last_model):
                return make_reply(ReturnCode.EXECUTION_RESULT_ERROR)
            with np.load(last_model) as saved:
                return DXO(DataKind.WEIGHTS, data=dict(saved)).to_shareable()
        return make_reply(ReturnCode.TASK_UNKNOWN)

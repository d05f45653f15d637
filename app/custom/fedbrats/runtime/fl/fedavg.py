"""FLARE's round workflows (FedAvg's ``ScatterAndGather``, SCAFFOLD's ``ScatterAndGatherScaffold``) that also score the
final global model for the best-model selection."""

import inspect

from nvflare.apis.controller_spec import Task
from nvflare.apis.dxo import DataKind, from_shareable
from nvflare.apis.fl_context import FLContext
from nvflare.apis.signal import Signal
from nvflare.app_common.app_constant import AppConstants
from nvflare.app_common.app_event_type import AppEventType
from nvflare.app_common.workflows.scatter_and_gather import ScatterAndGather
from nvflare.app_common.workflows.scatter_and_gather_scaffold import ScatterAndGatherScaffold

from fedbrats.runtime.fl.flare_compat import serialize_always
from fedbrats.runtime.fl.model_selector import CaseWeightedModelSelector, metric_and_cases
from fedbrats.runtime.fl.run_status import RunStatusReporting

SERIALIZED = (
    "min_clients",
    "num_rounds",
    "aggregator_id",
    "persistor_id",
    "shareable_generator_id",
    "train_task_name",
    "model_selector_id",
    "score_task_name",
    "patience",
)


class FinalModelScoring(RunStatusReporting):
    """A round workflow (:attr:`workflow`, a ``ScatterAndGather``) plus one validation broadcast of the final global
    model.

    The sites score the global model they receive at the start of each round; the model made by the
    last aggregation would otherwise never be scored, and a one-round job would have no best model.
    A resumed run starts at ``start_round`` and runs ``num_rounds`` more: the sites are told the planned total,
    ``start_round + num_rounds``, as the number of rounds (their learning-rate schedule follows it).
    ``patience``: stop after that many rounds without a new best global model (0: never); the final model is scored,
    the cross-site evaluation runs, and the selection records why and when the run ended.
    """

    workflow = ScatterAndGather

    def __init__(
        self,
        *args,
        model_selector_id: str = "model_selector",
        score_task_name: str = "validate_global",
        patience: int = 0,
        **kwargs,
    ):
        # *args with **kwargs: FLARE's Job API then also writes ScatterAndGather's arguments into the job's config
        super().__init__(*args, **kwargs)
        self.model_selector_id = model_selector_id
        self.score_task_name = score_task_name
        self.patience = patience
        self.stopped_early = False
        given = inspect.signature(self.workflow.__init__).bind(self, *args, **kwargs)
        given.apply_defaults()
        self.workflow_args = {k: v for k, v in given.arguments.items() if k != "self"}
        self.planned_rounds = self.workflow_args["start_round"] + self.workflow_args["num_rounds"]
        self.rounds_done = self.workflow_args["start_round"]

    def handle_event(self, event_type: str, fl_ctx: FLContext):
        super().handle_event(event_type, fl_ctx)
        if event_type == AppEventType.BEFORE_TRAIN_TASK:
            fl_ctx.get_prop(AppConstants.TRAIN_SHAREABLE).set_header(AppConstants.NUM_ROUNDS, self.planned_rounds)
        elif event_type == AppEventType.ROUND_DONE:
            self.rounds_done = fl_ctx.get_prop(AppConstants.CURRENT_ROUND) + 1
            self._stop_without_progress(fl_ctx)
        self.status_event(event_type, fl_ctx)

    def _stop_without_progress(self, fl_ctx: FLContext) -> None:
        """End the rounds after this one when ``patience`` scored rounds have passed without a new best model."""
        selector = fl_ctx.get_engine().get_component(self.model_selector_id)
        if not self.patience or not isinstance(selector, CaseWeightedModelSelector) or not selector.history:
            return
        last = max(h["round"] for h in selector.history)
        best = selector.best_round if selector.best_round is not None else 0
        if last - best < self.patience or self.rounds_done >= self.planned_rounds:
            return
        rounds = f"{last - best} round{'s' if last - best != 1 else ''}"
        reason = f"no new best global model in the last {rounds} (patience {self.patience}; best: round {best})"
        self.log_info(fl_ctx, f"stopping after round {self.rounds_done} of {self.planned_rounds}: {reason}")
        selector.record_stop(self.rounds_done, self.planned_rounds, reason, fl_ctx)
        self.stopped_early = True
        self._num_rounds = self.rounds_done - self.workflow_args["start_round"]  # FLARE's loop ends after this round

    def control_flow(self, abort_signal: Signal, fl_ctx: FLContext) -> None:
        super().control_flow(abort_signal, fl_ctx)
        selector = fl_ctx.get_engine().get_component(self.model_selector_id)
        if abort_signal.triggered and isinstance(selector, CaseWeightedModelSelector):
            selector.record_abort(fl_ctx)  # keeps the reason of a fatal error recorded before
        if abort_signal.triggered or (self.rounds_done != self.planned_rounds and not self.stopped_early):
            return
        if not isinstance(selector, CaseWeightedModelSelector):
            self.log_warning(fl_ctx, f"no model selector {self.model_selector_id!r}: final global model not scored")
            return
        self.log_info(fl_ctx, "scoring the final global model on the sites' validation cases")
        global_model = fl_ctx.get_prop(AppConstants.GLOBAL_MODEL)
        data = self.shareable_gen.learnable_to_shareable(global_model, fl_ctx)
        data.set_header(AppConstants.CURRENT_ROUND, self.rounds_done)
        data.set_header(AppConstants.NUM_ROUNDS, self.planned_rounds)
        task = Task(name=self.score_task_name, data=data, timeout=self.workflow_args["train_timeout"])
        self.broadcast_and_wait(
            task=task,
            min_responses=self.workflow_args["min_clients"],
            wait_time_after_min_received=self.workflow_args["wait_time_after_min_received"],
            fl_ctx=fl_ctx,
            abort_signal=abort_signal,
        )
        if abort_signal.triggered:
            selector.record_abort(fl_ctx)
            return
        scores = {}
        for client_task in task.client_tasks:
            site = client_task.client.name
            try:
                dxo = from_shareable(client_task.result)
                score = metric_and_cases(dxo.data) if dxo.data_kind == DataKind.METRICS else None
            except Exception:
                score = None
            if score is None:
                self.log_warning(fl_ctx, f"{site} returned no validation Dice of the final global model")
            else:
                scores[site] = score
        fl_ctx.set_prop(AppConstants.GLOBAL_MODEL, global_model, private=True, sticky=True)  # what a new best saves
        selector.score_model(self.rounds_done, scores, fl_ctx)


@serialize_always(*SERIALIZED)
class ScoredScatterAndGather(FinalModelScoring, ScatterAndGather):
    """FedAvg (and FedProx, FedOpt, Ditto: the sites and the shareable generator differ) scoring its final model."""


@serialize_always(*SERIALIZED)
class ScoredScatterAndGatherScaffold(FinalModelScoring, ScatterAndGatherScaffold):
    """SCAFFOLD scoring its final model. The server's controls start at zero, also in a resumed run."""

    workflow = ScatterAndGatherScaffold

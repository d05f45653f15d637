"""Keeps a run's state on the server after every round (:mod:`fedbrats.runtime.run_state`); resumes a run from one."""

import os
from typing import Optional

from nvflare.apis.event_type import EventType
from nvflare.apis.fl_context import FLContext
from nvflare.app_common.app_constant import AppConstants
from nvflare.app_common.app_event_type import AppEventType
from nvflare.widgets.widget import Widget

from fedbrats.runtime.fl.flare_compat import serialize_always
from fedbrats.runtime.fl.model_selector import CaseWeightedModelSelector
from fedbrats.runtime.run_state import (
    BEST_MODEL_FILE,
    GLOBAL_MODEL_FILE,
    RUN_STATE_FOLDER,
    copy_atomic,
    read_state,
    write_state,
)


@serialize_always("job_name", "num_rounds")
class RunStateKeeper(Widget):
    """After every round, copies the global model, the best global model and the in-time selection into the run's
    state folder ``<state_root>/<job id>/`` (``state_root`` empty: ``run_state/`` in the server's workspace).

    ``resume_from``: state folder of an earlier run that this job goes on from. Its selection, and its best model
    as the job's best global model, are restored before the first round; its global model is the persistor's
    initial model (the recipe sets that). ``job_name``, ``job_values``: the job's definition, recorded so that a
    resume builds the same job. ``num_rounds``: the run's planned total of rounds.
    """

    def __init__(
        self,
        job_name: str = "",
        job_values: Optional[dict] = None,
        num_rounds: int = 0,
        state_root: str = "",
        resume_from: str = "",
        persistor_id: str = "persistor",
        model_selector_id: str = "model_selector",
    ):
        super().__init__()
        self.job_name, self.job_values, self.num_rounds = job_name, dict(job_values or {}), num_rounds
        self.state_root, self.resume_from = state_root, resume_from
        self.persistor_id, self.model_selector_id = persistor_id, model_selector_id
        self.folder = None
        self.state = {}

    def handle_event(self, event_type: str, fl_ctx: FLContext):
        if event_type == AppEventType.TRAINING_STARTED and self.folder is None:
            self._start(fl_ctx)
        elif event_type == AppEventType.ROUND_DONE and self.folder:
            self._record(fl_ctx, fl_ctx.get_prop(AppConstants.CURRENT_ROUND) + 1)
        elif event_type == EventType.END_WORKFLOW and self.folder:
            self._record(fl_ctx)  # the final global model's score

    def _components(self, fl_ctx: FLContext):
        engine = fl_ctx.get_engine()
        return engine.get_component(self.persistor_id), engine.get_component(self.model_selector_id)

    def _start(self, fl_ctx: FLContext) -> None:
        engine, job_id = fl_ctx.get_engine(), fl_ctx.get_job_id()
        root = self.state_root or os.path.join(engine.get_workspace().get_root_dir(), RUN_STATE_FOLDER)
        self.folder = os.path.join(os.path.abspath(root), job_id)
        job = {"name": self.job_name, **self.job_values}
        self.state = {"job_id": job_id, "job": job, "num_rounds": self.num_rounds, "rounds_done": 0}
        persistor, selector = self._components(fl_ctx)
        if self.resume_from:
            earlier = read_state(self.resume_from)
            for name in (GLOBAL_MODEL_FILE, BEST_MODEL_FILE):
                if os.path.isfile(os.path.join(self.resume_from, name)):
                    copy_atomic(os.path.join(self.resume_from, name), os.path.join(self.folder, name))
            best = os.path.join(self.resume_from, BEST_MODEL_FILE)
            if os.path.isfile(best) and persistor is not None:
                copy_atomic(best, os.path.join(persistor.log_dir, persistor.best_global_model_file_name))
            if selector is not None:
                selector.restore(earlier, fl_ctx)
            self.state.update(rounds_done=earlier["rounds_done"], resumed_from=os.path.abspath(self.resume_from))
            self.log_info(
                fl_ctx,
                f"resuming the run of {self.resume_from} after round {earlier['rounds_done']} of {self.num_rounds} "
                f"(best global model so far: round {earlier.get('best_round')})",
            )
        if isinstance(selector, CaseWeightedModelSelector):  # the report of an aborted run names it for a resume
            selector.record_run_state(self.folder, self.job_name, self.num_rounds, fl_ctx)
        self._record(fl_ctx)
        self.log_info(fl_ctx, f"run state kept in {self.folder}")

    def _record(self, fl_ctx: FLContext, rounds_done: Optional[int] = None) -> None:
        persistor, selector = self._components(fl_ctx)
        selection = selector.selection() if selector is not None else {}
        if rounds_done is not None and persistor is not None:
            copy_atomic(
                os.path.join(persistor.log_dir, persistor.global_model_file_name),
                os.path.join(self.folder, GLOBAL_MODEL_FILE),
            )
            self.state["rounds_done"] = rounds_done
        best = os.path.join(persistor.log_dir, persistor.best_global_model_file_name) if persistor else ""
        if selection.get("best_round") != self.state.get("best_round") and os.path.isfile(best):
            copy_atomic(best, os.path.join(self.folder, BEST_MODEL_FILE))
        self.state.update(selection)
        write_state(self.folder, self.state)

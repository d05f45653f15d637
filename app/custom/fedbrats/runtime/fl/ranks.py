"""A site's training in several processes, started the way FLARE starts multi-GPU sites.

FLARE's ``PTMultiProcessExecutor`` runs ``torch.distributed.run`` with one FLARE sub-worker per process (rank); each
builds the site's executor from its config and runs every task, and rank 0's result is the task's. The product uses it
with these changes:

- the number of processes is the site's own setting (``processes`` in ``fedbrats_site.json``: sites differ in GPUs),
  read when the job starts, so the job's executor (:class:`~fedbrats.runtime.fl.executor.BratsExecutor`) starts this
  one itself rather than the job's config naming it with a count for every site;
- FLARE's executor waits for rank 0's result for as long as it takes: this one passes the task's abort on to the
  ranks (FLARE's ``ABORT_TASK`` event) and ends the task when they do not stop or when their processes are gone;
- a late result of a task that ended without it is not taken for the next task's;
- FLARE 2.9's sub-workers do not start as they are: the context FLARE sends them holds the client hierarchy, whose
  types they refuse to unpack (``Type 'nvflare.fuel.utils.tree_utils.Node' is not allowed``), and their run manager
  needs a client (:mod:`~fedbrats.runtime.fl.rank_worker`). Here the context leaves the hierarchy out, and the ranks
  run FLARE's sub-worker through :mod:`~fedbrats.runtime.fl.rank_worker`;
- a task and its result travel :func:`pack`-ed: FLARE 2.9 sends arrays as references to download, which the cells of
  the job's process and its ranks cannot resolve in the messages between them.
"""

import contextlib
import time
from typing import Iterator

from nvflare.apis.event_type import EventType
from nvflare.apis.fl_constant import FLContextKey, ReturnCode
from nvflare.apis.fl_context import FLContext
from nvflare.apis.shareable import Shareable, make_reply
from nvflare.apis.signal import Signal
from nvflare.app_opt.pt.multi_process_executor import PTMultiProcessExecutor
from nvflare.fuel.common.multi_process_executor_constants import CommunicationMetaData
from nvflare.fuel.f3.cellnet.core_cell import Message as CellMessage
from nvflare.fuel.f3.cellnet.core_cell import make_reply as cell_reply
from nvflare.fuel.utils import fobs

TASK_HEADER = "fedbrats_rank_task"
"""Header of a task sent to the ranks, which rank 0's result carries back: which task it answers."""
RANK_ERROR_HEADER = "fedbrats_rank_error"
"""Header of rank 0's result when the task failed in one of the ranks: the failing rank's message."""
ABORT_WAIT = 60.0
"""Seconds an aborted task waits for the ranks to stop (they stop between two training steps)."""
RANK_WORKER = f"{__package__}.rank_worker"
"""Module each rank runs (FLARE's sub-worker, started)."""
RANK_STARTED = "fedbrats.rank_started"
"""Event each rank fires when its executor has started (FLARE relays it to the job's process), with
:data:`START_ERROR` set to what went wrong, or empty."""
START_ERROR = "fedbrats_rank_start_error"
RANK_EVENTS = (EventType.ABORT_TASK,)
"""Events of the job's process passed on to the ranks (FLARE passes every one, with contexts that may hold arrays
sent as references the ranks cannot resolve); the ranks start on FLARE's own start message and end with the job."""
PACKED = "fedbrats_packed"
UNSENDABLE = (FLContextKey.CLIENT_HIERARCHY,)
"""Context properties of a client that FLARE's sub-workers cannot unpack."""


def pack(shareable: Shareable, task: int) -> Shareable:
    """``shareable`` (a task or its result) as one bytes value, arrays inline, marked with its ``task``."""
    packed = Shareable({PACKED: fobs.dumps(shareable)})
    packed.set_header(TASK_HEADER, task)
    return packed


def unpack(shareable: Shareable) -> Shareable:
    """The shareable :func:`pack` packed (any other as it is)."""
    if isinstance(shareable, Shareable) and PACKED in shareable:
        return fobs.loads(shareable[PACKED])
    return shareable


@contextlib.contextmanager
def sendable(fl_ctx: FLContext) -> Iterator[FLContext]:
    """``fl_ctx`` without :data:`UNSENDABLE` for a while (they are sticky: the context manager keeps them for
    every other context)."""
    kept = {k: fl_ctx.props.pop(k) for k in UNSENDABLE if k in fl_ctx.props}
    try:
        yield fl_ctx
    finally:
        fl_ctx.props.update(kept)


class SiteRanks(PTMultiProcessExecutor):
    """FLARE's ``PTMultiProcessExecutor`` whose wait for rank 0's result ends on an abort or when the ranks are
    gone."""

    def __init__(self, executor_id: str, num_of_processes: int, components: list, abort_wait: float = ABORT_WAIT):
        super().__init__(executor_id=executor_id, num_of_processes=num_of_processes, components=components)
        self.abort_wait = abort_wait
        self.start_error = ""
        self.started = {}
        """Rank -> its start error (empty: started), as the ranks reported."""
        self._task = 0

    def handle_event(self, event_type: str, fl_ctx: FLContext):
        if event_type == RANK_STARTED:
            self.started[fl_ctx.get_prop(FLContextKey.FROM_RANK_NUMBER)] = fl_ctx.get_prop(START_ERROR, "")
        else:
            super().handle_event(event_type, fl_ctx)

    def get_multi_process_command(self) -> str:
        # FLARE adds its own sub-worker module and that module's arguments, which the rank worker reads
        return f"{super().get_multi_process_command()} -m {RANK_WORKER}"

    def _initialize_multi_process(self, fl_ctx: FLContext):
        with sendable(fl_ctx):
            super()._initialize_multi_process(fl_ctx)  # FLARE logs its own errors here and goes on
        # the ranks started their executors while FLARE's start waited for them
        failed = {r: e for r, e in sorted(self.started.items()) if e}
        if failed:
            self.start_error = "; ".join(f"rank {r}: {e}" for r, e in failed.items())
        elif len(self.started) < self.num_of_processes:
            self.start_error = f"{len(self.started)} of {self.num_of_processes} training processes started (see above)"
        if self.start_error:
            self.log_error(fl_ctx, f"{fl_ctx.get_identity_name()} cannot train: {self.start_error}")

    def _pass_event_to_rank_processes(self, event_type: str, fl_ctx: FLContext):
        if event_type not in RANK_EVENTS:  # the ranks run the site's executor alone, which needs no other event
            return
        with sendable(fl_ctx):
            super()._pass_event_to_rank_processes(event_type, fl_ctx)

    def _execute_multi_process(self, task_name: str, shareable: Shareable, fl_ctx: FLContext, abort_signal: Signal):
        with sendable(fl_ctx):
            return super()._execute_multi_process(task_name, pack(shareable, self._task), fl_ctx, abort_signal)

    def _relay_fire_event(self, request: CellMessage) -> CellMessage:
        reply = super()._relay_fire_event(request)  # an event of a rank, and the context it returns to the rank
        context = (reply.payload or {}).get(CommunicationMetaData.FL_CTX) if isinstance(reply.payload, dict) else None
        if context is not None:
            for key in UNSENDABLE:
                context.props.pop(key, None)
        return reply

    def receive_execute_result(self, request: CellMessage) -> CellMessage:
        result = request.payload.get(CommunicationMetaData.SHAREABLE)
        if isinstance(result, Shareable) and result.get_header(TASK_HEADER) != self._task:
            return cell_reply(ReturnCode.OK, "", None)  # the late result of a task that ended without it
        request.payload[CommunicationMetaData.SHAREABLE] = unpack(result)
        return super().receive_execute_result(request)

    def _ended(self) -> str:
        if self.exe_process is None:
            return "the site's training processes did not start"
        code = self.exe_process.poll()
        return f"the site's training processes ended (exit code {code})" if code is not None else ""

    def execute(self, task_name: str, shareable: Shareable, fl_ctx: FLContext, abort_signal: Signal) -> Shareable:
        problem = self.start_error or self._ended()
        if problem:
            self.log_error(fl_ctx, f"{task_name}: {problem}; restart the job")
            return make_reply(ReturnCode.EXECUTION_EXCEPTION)
        if abort_signal.triggered:  # FLARE's own dispatch would stop the ranks for the rest of the job
            return make_reply(ReturnCode.TASK_ABORTED)
        self._task += 1
        self.execute_complete = False
        self._execute_multi_process(task_name=task_name, shareable=shareable, fl_ctx=fl_ctx, abort_signal=abort_signal)
        aborted = None
        while not self.execute_complete:
            if self._ended():
                self.log_error(fl_ctx, f"{task_name}: {self._ended()} before rank 0 answered; restart the job")
                return make_reply(ReturnCode.EXECUTION_EXCEPTION)
            if abort_signal.triggered and aborted is None:
                aborted = time.time()
                self._pass_event_to_rank_processes(EventType.ABORT_TASK, fl_ctx)
            if aborted is not None and time.time() - aborted > self.abort_wait:
                self.log_error(fl_ctx, f"{task_name}: the ranks did not stop {self.abort_wait:.0f} s after the abort")
                return make_reply(ReturnCode.TASK_ABORTED)
            time.sleep(0.1)
        result = self.execute_result
        failure = result.get_header(RANK_ERROR_HEADER) if isinstance(result, Shareable) else None
        if failure:
            self.log_error(fl_ctx, f"{task_name} failed in the site's {self.num_of_processes} processes: {failure}")
        return result

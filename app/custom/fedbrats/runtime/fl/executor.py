"""FLARE executor of a BraTS site: a thin adapter over :mod:`fedbrats.runtime.engine`."""

import os
import re
import time
from typing import Dict, List, Optional

import torch
from monai.utils import set_determinism
from nvflare.apis.analytix import AnalyticsDataType
from nvflare.apis.dxo import DXO, DataKind, MetaKey, from_shareable
from nvflare.apis.event_type import EventType
from nvflare.apis.executor import Executor
from nvflare.apis.fl_constant import FLContextKey, ReturnCode
from nvflare.apis.fl_context import FLContext
from nvflare.apis.shareable import Shareable, make_reply
from nvflare.apis.signal import Signal
from nvflare.apis.utils.analytix_utils import create_analytic_dxo, send_analytic_dxo
from nvflare.app_common.app_constant import AppConstants
from nvflare.fuel.utils.memory_utils import cleanup_memory
from torch.utils.tensorboard import SummaryWriter

from fedbrats.runtime import distributed
from fedbrats.runtime.constants import DICE_METRICS, MEAN_DICE, PER_CASE, SPLITS
from fedbrats.runtime.data.loaders import cache_summary, site_loader
from fedbrats.runtime.engine import SegmentationEngine, select_device
from fedbrats.runtime.errors import BratsDataError
from fedbrats.runtime.fl.algorithms import FEDAVG, algorithm_arguments
from fedbrats.runtime.fl.flare_compat import abort_time, serialize_always
from fedbrats.runtime.fl.ranks import RANK_ERROR_HEADER, RANK_STARTED, START_ERROR, TASK_HEADER, SiteRanks, pack, unpack
from fedbrats.runtime.fl.site_algorithms import site_method
from fedbrats.runtime.fl.site_data import resolve_site_data, site_processes
from fedbrats.runtime.interactive.engine import site_engine
from fedbrats.runtime.metrics import without_case_order
from fedbrats.runtime.settings import TrainSettings
from fedbrats.runtime.update_guards import named, nonfinite_tensors

BEST_LOCAL_MODEL = "best_local_model.pt"
TB_FOLDER = "tb_events"
"""A site's own TensorBoard events, in its app folder; the server's receiver writes its copy into ``tb_events/<site>``
of the server's run folder."""
GLOBAL_MODEL_TAG, LOCAL_MODEL_TAG, TRAIN_TAG = "global_model", "local_model", "train"
"""Prefixes of the figures a site records each round: ``global_model/dice_tc`` (the received model on the validation
cases), ``local_model/mean_dice`` (the model it trained), ``train/loss`` and the other training figures."""
RANK_EXECUTOR_ID = "fedbrats_rank_executor"
"""Id of the executor each rank of a site in several processes builds (:mod:`fedbrats.runtime.fl.ranks`)."""


def training_figures(result: Dict[str, float]) -> Dict[str, float]:
    """The figures of one round's local training (:meth:`SegmentationEngine.train_steps`): the mean loss and its
    parts, steps, seconds per step and crops per second."""
    seconds, steps = result.get("seconds", 0.0), result["steps"]
    figures = {f"{TRAIN_TAG}/{k}": result[k] for k in ("loss", "loss_segmentation", "loss_vae", "steps") if k in result}
    if steps and seconds > 0:
        figures[f"{TRAIN_TAG}/step_seconds"] = seconds / steps
        figures[f"{TRAIN_TAG}/crops_per_second"] = result.get("crops", steps) / seconds
    return figures


@serialize_always("training", "eval_split", "send_weight_diff", "algorithm")
class BratsExecutor(Executor):
    """Handles ``train``, ``submit_model``, ``validate`` and ``validate_global`` for one site.

    ``train``: validate the received global model on the validation split (reported for the in-time
    selection), train ``local_epochs``, validate the local model and keep the site's best, return
    weights (or their difference) with the number of steps. ``submit_model``: the site's best local
    model. ``validate``: Dice of the given model on ``eval_split``. ``validate_global``: Dice of the
    given global model on the validation split.

    A round whose training leaves a weight non-finite (NaN or Inf) is refused: the site logs which tensors,
    returns an error for that round instead of weights, keeps its best local model and restarts its optimiser.
    ``local_vars``: regular expression of tensors the site keeps to itself (a privacy filter leaves them out of
    its results): training starts from the site's own values of them, not the global model's. ``algorithm`` and
    ``algorithm_args``: the job's aggregation method (:mod:`fedbrats.runtime.fl.algorithms`); its site part
    (:mod:`fedbrats.runtime.fl.site_algorithms`) may add a term to the local steps, correct them, send more than the
    weights, or train a personal model that is then the site's local model.

    A site whose settings ask for several ``processes`` (one per GPU) trains in that many ranks: this executor then
    starts them through FLARE (:class:`~fedbrats.runtime.fl.ranks.SiteRanks`), each rank runs this executor, and the
    ranks train together with PyTorch DDP on their shares of the training cases. Rank 0 alone validates, records,
    keeps the best local model and answers FLARE; the other ranks only train.
    """

    def __init__(
        self,
        training: Optional[Dict] = None,
        data_root: str = "",
        datalist: str = "",
        eval_split: str = "testing",
        device: str = "auto",
        send_weight_diff: bool = False,
        local_vars: str = "",
        algorithm: str = FEDAVG,
        algorithm_args: Optional[Dict] = None,
        train_task_name: str = AppConstants.TASK_TRAIN,
        submit_model_task_name: str = AppConstants.TASK_SUBMIT_MODEL,
        validate_task_name: str = AppConstants.TASK_VALIDATION,
        score_task_name: str = "validate_global",
    ):
        super().__init__()
        if eval_split not in SPLITS:
            raise ValueError(f"eval_split must be one of {SPLITS}, got {eval_split!r}")
        self.settings = TrainSettings.from_dict(training)
        # arguments kept under their own names: FLARE's Job API writes them into the job's config
        self.training, self.data_root, self.datalist = dict(training or {}), data_root, datalist
        self.eval_split, self.device, self.send_weight_diff = eval_split, device, send_weight_diff
        self.local_vars = local_vars
        self.algorithm, self.algorithm_args = algorithm, dict(algorithm_args or {})
        algorithm_arguments(algorithm, algorithm_args)
        self._local = re.compile(local_vars) if local_vars else None
        self.train_task_name, self.submit_model_task_name = train_task_name, submit_model_task_name
        self.validate_task_name, self.score_task_name = validate_task_name, score_task_name
        self.tasks = {
            train_task_name: self._train,
            submit_model_task_name: self._submit_model,
            validate_task_name: self._validate,
            score_task_name: self._score_global,
        }
        self.engine = None
        self.loaders = {}
        self.best_local = -1.0
        self.writer = None
        self.ranks = None
        """With several processes, in the job's own process: the ranks that do the work."""
        self.is_rank = False
        """This executor runs in one of the site's ranks."""
        self.rank_start_error = ""
        self._abort_requested = False

    @property
    def task_names(self) -> List[str]:
        """The tasks this executor handles, as a job's config lists them."""
        return list(self.tasks)

    def handle_event(self, event_type: str, fl_ctx: FLContext):
        if self.ranks is not None:  # the job's process of a site in several processes: every event goes to the ranks
            self.ranks.handle_event(event_type, fl_ctx)
        elif event_type == EventType.START_RUN:
            self._initialize(fl_ctx)
        elif event_type == EventType.ABORT_TASK and self.is_rank:  # the task's abort, passed on by the job's process
            self._abort_requested = True
        elif event_type == EventType.END_RUN and self.writer is not None:
            self.writer.close()

    def _config_args(self) -> Dict:
        """The arguments this executor was made with, as a component config takes them."""
        names = ("training", "data_root", "datalist", "eval_split", "device", "send_weight_diff", "local_vars")
        names += ("algorithm", "algorithm_args", "train_task_name", "submit_model_task_name")
        return {n: getattr(self, n) for n in names + ("validate_task_name", "score_task_name")}

    def _initialize(self, fl_ctx: FLContext) -> None:
        self.is_rank = fl_ctx.get_prop(FLContextKey.RANK_NUMBER) is not None
        if not self.is_rank:
            self._start(fl_ctx)
            return
        try:
            self._start(fl_ctx)
        except Exception as e:
            self.rank_start_error = f"{type(e).__name__}: {e}"
            self.log_exception(fl_ctx, f"rank {fl_ctx.get_prop(FLContextKey.RANK_NUMBER)} could not start")
        # the job's process waits for every rank's word (from a context of its own: FLARE does not pass the events
        # of a context that came from the job's process back to it)
        with fl_ctx.get_engine().new_context() as report:
            report.set_prop(START_ERROR, self.rank_start_error, private=True, sticky=False)
            self.fire_event(RANK_STARTED, report)

    def _start(self, fl_ctx: FLContext) -> None:
        site = fl_ctx.get_identity_name()
        workspace = fl_ctx.get_engine().get_workspace()
        job_id = fl_ctx.get_job_id()
        self.app_dir = workspace.get_app_dir(job_id)
        self.site_data_root, self.site_datalist, source = resolve_site_data(
            site, workspace.get_site_config_dir(), self.data_root, self.datalist, workspace.get_app_config_dir(job_id)
        )
        processes, timeout, processes_source = site_processes(
            site, workspace.get_site_config_dir(), distributed.DEFAULT_TIMEOUT
        )
        is_rank = self.is_rank
        if processes > 1 and not is_rank:
            self.log_info(fl_ctx, f"training in {processes} processes (from {processes_source})")
            path = f"{type(self).__module__}.{type(self).__name__}"
            component = {"id": RANK_EXECUTOR_ID, "path": path, "args": self._config_args()}
            self.ranks = SiteRanks(RANK_EXECUTOR_ID, processes, [component])
            self.ranks.handle_event(EventType.START_RUN, fl_ctx)
            return
        self.best_model_path = os.path.join(self.app_dir, BEST_LOCAL_MODEL)
        set_determinism(self.settings.seed)
        device = select_device(self.device)
        if is_rank:
            device = distributed.start(self.device, timeout).device
        self.engine = site_engine(self.settings, device)  # the interactive model's when the settings say so
        self.method = site_method(self.algorithm, self.algorithm_args)
        self.method.setup(self.engine, self.app_dir)
        if distributed.rank():  # the ranks draw other crops and augmentations from the same model
            set_determinism(self.settings.seed + distributed.rank())
        rank = f"rank {distributed.rank()} of {distributed.world_size()}, " if is_rank else ""
        self.log_info(
            fl_ctx,
            f"{rank}data root {self.site_data_root}, datalist {self.site_datalist} (from {source}); "
            f"algorithm {self.algorithm} {self.method.args}, device {self.engine.device}, "
            f"AMP {self.engine.use_amp}, threads {torch.get_num_threads()}",
        )
        if distributed.is_main():
            self.writer = SummaryWriter(os.path.join(self.app_dir, TB_FOLDER))

    def _loader(self, split: str, fl_ctx: FLContext):
        if split not in self.loaders:
            self.log_info(fl_ctx, f"preparing {split} cases (cache_rate {self.settings.cache_rate})")
            train = split == "training"
            ranks = {"rank": distributed.rank(), "world_size": distributed.world_size()} if train else {}
            self.loaders[split] = site_loader(
                self.site_datalist, self.site_data_root, split, self.settings, train=train, **ranks
            )
            self.log_info(fl_ctx, f"{split}: {cache_summary(self.loaders[split].dataset)}")
        return self.loaders[split]

    def execute(self, task_name: str, shareable: Shareable, fl_ctx: FLContext, abort_signal: Signal) -> Shareable:
        if self.ranks is not None:
            return self.ranks.execute(task_name, shareable, fl_ctx, abort_signal)
        handler = self.tasks.get(task_name)
        if handler is None:
            return make_reply(ReturnCode.TASK_UNKNOWN)
        if self.is_rank:
            return self._execute_in_rank(task_name, handler, shareable, fl_ctx, abort_signal)
        try:
            return handler(shareable, fl_ctx, abort_signal)
        except BratsDataError as e:
            self.log_error(fl_ctx, f"bad input data: {e}")
            return make_reply(ReturnCode.EXECUTION_EXCEPTION)
        finally:
            # what the task's steps kept for reuse goes back to the OS (gc, malloc_trim), as FLARE advises per round
            cleanup_memory(cuda_empty_cache=self.engine is not None and self.engine.device.type == "cuda")

    def _execute_in_rank(self, task_name, handler, shareable: Shareable, fl_ctx: FLContext, abort_signal: Signal):
        """A task in one of the site's ranks: the ranks other than 0 only train, and every failure becomes a reply
        (FLARE's sub-worker sends rank 0's reply, and nothing when it raises), naming the rank it came from."""
        self._abort_requested = False
        task, shareable = shareable.get_header(TASK_HEADER), unpack(shareable)
        try:
            if self.rank_start_error:
                raise RuntimeError(self.rank_start_error)
            if not distributed.is_main() and task_name != self.train_task_name:
                reply = make_reply(ReturnCode.OK)
            else:
                reply = handler(shareable, fl_ctx, abort_signal)
        except Exception as e:
            message = str(e) if isinstance(e, distributed.RankError) else f"rank {distributed.rank()}: {e}"
            if isinstance(e, BratsDataError):
                message = f"rank {distributed.rank()}: bad input data: {e}"
            self.log_error(fl_ctx, f"{task_name} failed: {message}")
            reply = make_reply(ReturnCode.EXECUTION_EXCEPTION)
            reply.set_header(RANK_ERROR_HEADER, message)
        finally:
            cleanup_memory(cuda_empty_cache=self.engine is not None and self.engine.device.type == "cuda")
        return pack(reply, task)

    def _receive(self, shareable: Shareable, fl_ctx: FLContext, training: bool = False) -> Optional[Dict]:
        """Load the task's model; a training task's data is read by the job's method, and the tensors the site keeps
        to itself keep their site values."""
        dxo = from_shareable(shareable)
        if training:
            try:
                dxo = self.method.received_model(dxo)
            except (KeyError, ValueError, RuntimeError) as e:
                self.log_error(fl_ctx, f"the training task's data does not fit algorithm {self.algorithm}: {e}")
                return None
        if dxo.data_kind != DataKind.WEIGHTS:
            self.log_error(fl_ctx, f"expected model weights, got {dxo.data_kind}")
            return None
        weights = dxo.data
        if training and self._local is not None:
            weights = {**weights, **{k: v for k, v in self.engine.get_weights().items() if self._local.search(k)}}
        self.engine.set_weights(weights)
        return dxo.data

    def _evaluate(
        self, split: str, fl_ctx: FLContext, abort_signal: Signal, engine: Optional[SegmentationEngine] = None
    ) -> Dict:
        engine = engine or self.engine
        return engine.validate(self._loader(split, fl_ctx), should_stop=lambda: abort_signal.triggered)

    def _record(self, figures: Dict[str, float], step: int, fl_ctx: FLContext) -> None:
        """Write figures into the site's own TensorBoard events and send them to the server as FLARE analytics
        (the job's receivers record them there, one run per site)."""
        for tag, value in figures.items():
            self.writer.add_scalar(tag, value, step)
            dxo = create_analytic_dxo(tag, float(value), AnalyticsDataType.SCALAR, global_step=step)
            send_analytic_dxo(self, dxo, fl_ctx)
        self.writer.flush()

    @staticmethod
    def _dice_figures(prefix: str, metrics: Dict) -> Dict[str, float]:
        return {f"{prefix}/{name}": metrics[name] for name in DICE_METRICS + (MEAN_DICE,)}

    def _train(self, shareable: Shareable, fl_ctx: FLContext, abort_signal: Signal) -> Shareable:
        current_round = shareable.get_header(AppConstants.CURRENT_ROUND, 0)
        total_rounds = shareable.get_header(AppConstants.NUM_ROUNDS, "?")
        # (1) receive the global model
        global_weights = self._receive(shareable, fl_ctx, training=True)
        if global_weights is None:
            return make_reply(ReturnCode.BAD_TASK_DATA)
        stop = lambda: abort_signal.triggered or self._abort_requested  # noqa: E731
        main = distributed.is_main()  # alone, or rank 0 of the site's processes
        started = time.time()
        # (2) validate it for the server's in-time selection of the best global model (rank 0), while the other
        # ranks prepare their training cases; a failure in any rank ends the task in all
        with distributed.together():
            if main:
                global_metrics = self._evaluate("validation", fl_ctx, abort_signal)
            loader = self._loader("training", fl_ctx)
        validated = time.time()
        if main:
            self._record(self._dice_figures(GLOBAL_MODEL_TAG, global_metrics), current_round, fl_ctx)
        # (3) train locally, at the learning rate of this round
        if isinstance(total_rounds, int) and total_rounds > 0:
            self.engine.set_progress(current_round / total_rounds)
        round_label = f"{current_round + 1}/{total_rounds}"
        if main:  # not echoed as progress
            self.log_info(fl_ctx, f"round {round_label} training starts: {self._planned_steps()}")
        result = self.engine.train_round(loader, stop, **self.method.hooks(self.engine))
        trained = time.time()
        steps = result["steps"]
        if stop() or result.get("stopped"):
            per_step = f"{(trained - validated) / steps:.2f} s per step" if steps else "no step taken"
            return self._aborted(
                round_label, f"training stopped after {steps} steps ({per_step})", trained, abort_signal, fl_ctx
            )
        # a model with NaN or Inf is neither sent nor kept
        nonfinite = nonfinite_tensors(self.engine.get_weights())
        if nonfinite:
            return self._refuse_update(nonfinite, round_label, result["loss"], fl_ctx)
        self.method.after_training(self.engine)
        if main:
            self._record(training_figures(result), current_round, fl_ctx)
        # (4) validate the local model (the personal one, with a personalised method) and keep the site's best
        local = self.method.personal_engine(self.engine, loader, stop)
        if stop():
            return self._aborted(round_label, "training the personal model stopped", time.time(), abort_signal, fl_ctx)
        if not main:  # the other ranks are done: rank 0 validates and answers
            return make_reply(ReturnCode.OK)
        local_metrics = self._evaluate("validation", fl_ctx, abort_signal, local)
        if stop():
            return self._aborted(round_label, "validating the local model stopped", time.time(), abort_signal, fl_ctx)
        self._record(self._dice_figures(LOCAL_MODEL_TAG, local_metrics), current_round, fl_ctx)
        if local_metrics[MEAN_DICE] > self.best_local:
            self.best_local = local_metrics[MEAN_DICE]
            torch.save(
                {"model": local.get_weights(), "round": current_round, "metrics": local_metrics},
                self.best_model_path,
            )
        local_name = self.method.local_model
        self.log_info(
            fl_ctx,
            f"round {round_label}: global model val Dice {global_metrics[MEAN_DICE]:.4f}, "
            f"{steps} steps, loss {result['loss']:.4f}, {local_name} val Dice {local_metrics[MEAN_DICE]:.4f} "
            f"(best {self.best_local:.4f}); task {time.time() - started:.1f} s: validating the global model "
            f"{validated - started:.1f} s, training {trained - validated:.1f} s, the {local_name} "
            f"{time.time() - trained:.1f} s",
        )
        # (5) send the weights (or their difference) back, with the step count and the global model's Dice; with
        # several ranks, a step took a batch in every rank: the count is the optimiser's, as for one process whose
        # batch is that of all ranks together
        weights = {k: v.numpy() for k, v in self.engine.get_weights().items()}
        kind = DataKind.WEIGHTS
        if self.send_weight_diff:
            weights = {k: v - global_weights[k] for k, v in weights.items()}
            kind = DataKind.WEIGHT_DIFF
        summary = {k: v for k, v in global_metrics.items() if k != PER_CASE}  # per-case values only in evaluations
        dxo = DXO(kind, data=weights, meta={MetaKey.NUM_STEPS_CURRENT_ROUND: steps, MetaKey.INITIAL_METRICS: summary})
        return self.method.reply(dxo).to_shareable()

    def _planned_steps(self) -> str:
        if self.settings.local_steps:
            return f"{self.settings.local_steps} local steps"
        cap = self.settings.max_steps_per_epoch
        return f"{self.settings.local_epochs} local epochs" + (f" of at most {cap} steps" if cap else "")

    def _aborted(self, round_label: str, what: str, when: float, abort_signal: Signal, fl_ctx: FLContext):
        """The job was aborted during this task: say what stopped and how long after the abort arrived; nothing
        is sent."""
        arrived = abort_time(abort_signal)
        after = f", {when - arrived:.2f} s after the abort reached the site" if arrived else ""
        self.log_info(fl_ctx, f"round {round_label}: job aborted: {what}{after}")
        return make_reply(ReturnCode.TASK_ABORTED)

    def _refuse_update(self, nonfinite: List[str], round_label: str, loss: float, fl_ctx: FLContext) -> Shareable:
        """Send no weights this round: the trained model is not finite. The best local model stays as it is."""
        n_tensors = len(self.engine.get_weights())
        best = f"val Dice {self.best_local:.4f}" if self.best_local >= 0 else "none yet"
        self.log_error(
            fl_ctx,
            f"{fl_ctx.get_identity_name()} round {round_label}: refusing to send the update: training left "
            f"{len(nonfinite)} of {n_tensors} weight tensors with NaN or Inf ({named(nonfinite)}; loss {loss:.4g}); "
            f"the best local model is kept ({best}) and the optimiser restarts",
        )
        self.engine.reset_optimizer()
        return make_reply(ReturnCode.EXECUTION_RESULT_ERROR)

    def _submit_model(self, shareable: Shareable, fl_ctx: FLContext, abort_signal: Signal) -> Shareable:
        if not os.path.isfile(self.best_model_path):
            self.log_error(
                fl_ctx, f"no best local model at {self.best_model_path}: this site has not trained in this job"
            )
            return make_reply(ReturnCode.EXECUTION_RESULT_ERROR)
        # send the site's best local model to the cross-site evaluation
        checkpoint = torch.load(self.best_model_path, map_location="cpu", weights_only=False)
        weights = {k: v.numpy() for k, v in checkpoint["model"].items()}
        return DXO(DataKind.WEIGHTS, data=weights, meta={"round": checkpoint["round"]}).to_shareable()

    def _metrics_reply(self, split: str, shareable: Shareable, fl_ctx: FLContext, abort_signal: Signal) -> Shareable:
        # (1) receive the model to score
        if self._receive(shareable, fl_ctx) is None:
            return make_reply(ReturnCode.BAD_TASK_DATA)
        # (2) score it on this site's cases
        metrics = self._evaluate(split, fl_ctx, abort_signal)
        if abort_signal.triggered:
            return make_reply(ReturnCode.TASK_ABORTED)
        owner = shareable.get_header(AppConstants.MODEL_OWNER, "global model")
        self.log_info(fl_ctx, f"{owner} on {split}: mean Dice {metrics[MEAN_DICE]:.4f} over {metrics['n_cases']} cases")
        # (3) send the scores back, each per-case list sorted: no value can be tied to a case by its position
        return DXO(DataKind.METRICS, data={**without_case_order(metrics), "split": split}).to_shareable()

    def _validate(self, shareable: Shareable, fl_ctx: FLContext, abort_signal: Signal) -> Shareable:
        return self._metrics_reply(self.eval_split, shareable, fl_ctx, abort_signal)

    def _score_global(self, shareable: Shareable, fl_ctx: FLContext, abort_signal: Signal) -> Shareable:
        return self._metrics_reply("validation", shareable, fl_ctx, abort_signal)

"""In-time selection of the best global model from the sites' validation Dice, weighted by case counts."""

import json
import math
import os
import time
from typing import Dict, List, Optional, Tuple

from nvflare.apis.dxo import MetaKey, from_shareable
from nvflare.apis.event_type import EventType
from nvflare.apis.fl_constant import FLContextKey
from nvflare.apis.fl_context import FLContext
from nvflare.apis.job_def import job_from_meta
from nvflare.app_common.app_constant import AppConstants
from nvflare.app_common.app_event_type import AppEventType
from nvflare.widgets.widget import Widget

from fedbrats.runtime.constants import MEAN_DICE, N_CASES

SELECTION_FILE = "global_model_selection.json"
POLICY_VIOLATION = "Aborting job due to deployment policy violation"
"""FLARE's reason for aborting a job whose live sites fell below its ``min_clients`` (it logs the numbers only)."""
ABORTED = "the job was aborted (by an admin, or by FLARE after a site's failure)"
"""The reason recorded for an abort that came without one (no fatal error was raised on the server)."""


def weighted_score(scores: Dict[str, Tuple[float, int]]) -> Optional[float]:
    """Sum of score x cases over the sum of cases; None without any case."""
    total = sum(n for _, n in scores.values())
    return sum(s * n for s, n in scores.values()) / total if total else None


def metric_and_cases(metrics: object) -> Optional[Tuple[float, int]]:
    if not isinstance(metrics, dict):
        return None
    value, cases = metrics.get(MEAN_DICE), metrics.get(N_CASES)
    if not isinstance(value, (int, float)) or not math.isfinite(value) or not isinstance(cases, int) or cases <= 0:
        return None
    return float(value), cases


class CaseWeightedModelSelector(Widget):
    """Scores the global model each round from the Dice the sites measured on it before training.

    Round 0 is skipped (the sites received the untrained initial model). The final global model is
    scored by :class:`fedbrats.runtime.fl.fedavg.ScoredScatterAndGather`, which calls :meth:`score_model`.
    A new best fires ``GLOBAL_BEST_MODEL_AVAILABLE``, on which the persistor saves the best model.

    Every history entry records ``seconds``: when the scored global model was made (the end of the round before it),
    counted from the start of the run, so that a curve can be drawn against wall-clock time.

    Only like is compared with like: a round is a candidate only when every site expected in it (the job's sites
    not lost) scored it, and rounds scored by different sets of sites (before and after a site was lost) are never
    compared: the selection starts again on the new set and says so.
    """

    def __init__(self):
        super().__init__()
        self.best_score = -math.inf
        self.best_round = None
        self.history = []
        self.participants = []
        self.lost = {}
        """Sites deemed disconnected during the run: site -> the round in which FLARE gave up on it."""
        self.best_sites: Optional[List[str]] = None
        """The sites whose scores chose the best model so far."""
        self.stopped: Optional[dict] = None
        """Why the rounds ended before the planned total: ``{"round", "planned", "reason"}``."""
        self.aborted: Optional[dict] = None
        """Why and when the job was aborted: ``{"round"`` (None: after the rounds), ``"rounds_done", "planned",
        "reason"}``."""
        self.run_state: Optional[dict] = None
        """Where the run's state is kept for a resume: ``{"folder", "job", "planned"}`` (the run state keeper says)."""
        self._rounds_done = 0
        self._round = 0
        self._scores: Dict[str, Tuple[float, int]] = {}
        self._run_start = time.time()
        self._model_seconds: Dict[int, float] = {}
        """Seconds from the start of the run to the making of each round's global model (the round before's end)."""

    def handle_event(self, event_type: str, fl_ctx: FLContext):
        if event_type == EventType.START_RUN:
            self.best_score, self.best_round, self.history, self.best_sites = -math.inf, None, [], None
            # the job's sites: the report names a site that is lost during the run even when it sent nothing
            self.participants = sorted(c.name for c in fl_ctx.get_engine().get_clients())
            self.lost, self.stopped, self.aborted, self._rounds_done = {}, None, None, 0
            self._run_start, self._model_seconds = time.time(), {}
        elif event_type == AppEventType.ROUND_DONE:
            done = fl_ctx.get_prop(AppConstants.CURRENT_ROUND)
            if done is not None:
                self._model_seconds[done + 1] = time.time() - self._run_start
                self._rounds_done = done + 1
        elif event_type == AppEventType.ROUND_STARTED:
            self._scores = {}
            self._round = self._rounds_done = fl_ctx.get_prop(AppConstants.CURRENT_ROUND) or 0
        elif event_type == EventType.FATAL_SYSTEM_ERROR:
            reason = str(fl_ctx.get_prop(FLContextKey.EVENT_DATA, "") or "fatal system error")
            self.record_abort(fl_ctx, self._policy_reason(fl_ctx) if reason == POLICY_VIOLATION else reason)
        elif event_type == EventType.CLIENT_DISCONNECTED:
            site = fl_ctx.get_prop(FLContextKey.DISCONNECTED_CLIENT_NAME)
            self.lost[site] = self._round + 1
            self.log_warning(fl_ctx, f"{site} lost in round {self._round + 1}: no task waits for it any more")
            self._write(fl_ctx)
        elif event_type == EventType.CLIENT_RECONNECTED:
            site = fl_ctx.get_prop(FLContextKey.RECONNECTED_CLIENT_NAME)
            if self.lost.pop(site, None) is not None:
                self.log_info(fl_ctx, f"{site} is back")
                self._write(fl_ctx)
        elif event_type == AppEventType.BEFORE_CONTRIBUTION_ACCEPT:
            self._collect(fl_ctx)
        elif event_type == AppEventType.BEFORE_AGGREGATION:
            current_round = fl_ctx.get_prop(AppConstants.CURRENT_ROUND)
            if current_round:
                self.score_model(current_round, self._scores, fl_ctx)
            self._scores = {}

    def _collect(self, fl_ctx: FLContext) -> None:
        peer_ctx = fl_ctx.get_peer_context()
        site = peer_ctx.get_identity_name(default="?")
        shareable = peer_ctx.get_prop(FLContextKey.SHAREABLE)
        if not fl_ctx.get_prop(AppConstants.CURRENT_ROUND):
            return
        try:
            metrics = from_shareable(shareable).get_meta_prop(MetaKey.INITIAL_METRICS)
        except Exception:
            metrics = None
        score = metric_and_cases(metrics)
        if score is None:
            self.log_warning(fl_ctx, f"{site} sent no usable validation Dice of the global model: {metrics!r}")
            return
        self._scores[site] = score

    def score_model(self, model_round: int, scores: Dict[str, Tuple[float, int]], fl_ctx: FLContext) -> bool:
        """Record the case-weighted Dice of the global model used in ``model_round``; True if it is the best."""
        score = weighted_score(scores)
        made = self._model_seconds.get(model_round)
        expected = sorted(set(self.participants) - set(self.lost))
        complete = score is not None and set(expected) <= set(scores)
        entry = {
            "round": model_round,
            "score": score,
            "sites": {s: {MEAN_DICE: v, N_CASES: n} for s, (v, n) in scores.items()},
            "complete": complete,
            "seconds": round(made if made is not None else time.time() - self._run_start, 2),
        }
        # a resumed run scores again the model its earlier run scored last: one entry per round
        self.history = [h for h in self.history if h.get("round") != model_round] + [entry]
        sites = sorted(scores)
        if complete and self.best_sites is not None and sites != self.best_sites:
            self.log_warning(
                fl_ctx,
                f"round {model_round} is scored by {', '.join(sites)}, the best so far (round {self.best_round}) by "
                f"{', '.join(self.best_sites)}: scores of other sites are not compared, the selection starts again",
            )
            self.best_score = -math.inf
        is_best = complete and score > self.best_score
        if score is None:
            self.log_warning(
                fl_ctx, f"global model of round {model_round} not scored: no site reported validation Dice"
            )
        elif not complete:
            missing = ", ".join(s for s in expected if s not in scores)
            self.log_warning(
                fl_ctx,
                f"global model of round {model_round} not a candidate for the best: {missing} did not score it "
                f"(its case-weighted Dice {score:.4f} is over {', '.join(sites)} only)",
            )
        elif is_best:
            self.best_score, self.best_round, self.best_sites = score, model_round, sites
            self.log_info(fl_ctx, f"new best global model (round {model_round}): case-weighted mean Dice {score:.4f}")
            fl_ctx.set_prop(AppConstants.VALIDATION_RESULT, score, private=True, sticky=False)
            self.fire_event(AppEventType.GLOBAL_BEST_MODEL_AVAILABLE, fl_ctx)
        self._write(fl_ctx)
        return is_best

    def record_stop(self, rounds_done: int, planned: int, reason: str, fl_ctx: FLContext) -> None:
        """The workflow ends the rounds early after ``rounds_done`` of ``planned``, for ``reason``."""
        self.stopped = {"round": rounds_done, "planned": planned, "reason": reason}
        self._write(fl_ctx)

    def record_abort(self, fl_ctx: FLContext, reason: Optional[str] = None) -> None:
        """The job is aborted, for ``reason`` (None: unknown); the first reason given is kept."""
        if self.aborted is not None and (reason is None or self.aborted["reason"] != ABORTED):
            return
        planned = (self.run_state or {}).get("planned")
        running = not self.stopped and (not planned or self._rounds_done < planned)
        self.aborted = {
            "round": self._rounds_done + 1 if running else None,
            "rounds_done": self._rounds_done,
            "planned": planned,
            "reason": reason or ABORTED,
        }
        when = f"in round {self.aborted['round']}" if running else f"after round {self._rounds_done}"
        self.log_error(fl_ctx, f"job aborted {when}: {self.aborted['reason']}")
        self._write(fl_ctx)

    def _policy_reason(self, fl_ctx: FLContext) -> str:
        """What FLARE's policy check found, in words: the sites alive against ``min_clients``, or a required site
        lost."""
        alive = [s for s in self.participants if s not in self.lost]
        lost = f" ({', '.join(sorted(self.lost))} lost)" if self.lost else ""
        try:
            job = job_from_meta(fl_ctx.get_prop(FLContextKey.JOB_META) or {})
        except Exception:
            job = None
        if not alive:
            return f"every site was lost{lost}"
        if job is not None and len(alive) < job.min_sites:
            return f"alive sites {len(alive)} < required min_clients {job.min_sites}{lost}"
        required = [s for s in (job.required_sites if job else []) if s in self.lost]
        return f"required sites lost: {', '.join(required)}" if required else POLICY_VIOLATION

    def record_run_state(self, folder: str, job: str, planned: int, fl_ctx: FLContext) -> None:
        """The run's state is kept in ``folder`` (job ``job``, ``planned`` rounds in all): what a resume starts from."""
        self.run_state = {"folder": folder, "job": job, "planned": planned}
        self._write(fl_ctx)

    def selection(self) -> dict:
        """Best round, its score, every round's scores so far and the job's sites."""
        best_score = self.best_score if self.best_round is not None else None
        return {
            "best_round": self.best_round,
            "best_score": best_score,
            "history": list(self.history),
            "best_sites": self.best_sites,
            "participants": list(self.participants),
            "lost": dict(self.lost),
            "stopped": self.stopped,
            "aborted": self.aborted,
            "run_state": self.run_state,
        }

    def restore(self, selection: dict, fl_ctx: FLContext) -> None:
        """Go on from an earlier run's :meth:`selection`: its best stays unless a later one beats it."""
        self.best_round = selection.get("best_round")
        score = selection.get("best_score")
        self.best_score = float(score) if self.best_round is not None and score is not None else -math.inf
        self.history = list(selection.get("history") or [])
        best = next((h for h in self.history if h.get("round") == self.best_round), None)
        self.best_sites = selection.get("best_sites") or (sorted(best.get("sites") or {}) or None if best else None)
        self._write(fl_ctx)

    def _write(self, fl_ctx: FLContext) -> None:
        app_dir = fl_ctx.get_engine().get_workspace().get_app_dir(fl_ctx.get_job_id())
        with open(os.path.join(app_dir, SELECTION_FILE), "w") as f:
            json.dump(self.selection(), f, indent=2)

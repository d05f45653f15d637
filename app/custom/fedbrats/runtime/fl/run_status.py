"""What a round workflow tells FLARE's ``show_stats`` about its run, for ``fedbrats status``."""

import math
import time

from nvflare.apis.dxo import DataKind, MetaKey, from_shareable
from nvflare.apis.event_type import EventType
from nvflare.apis.fl_constant import FLContextKey
from nvflare.apis.fl_context import FLContext
from nvflare.app_common.app_constant import AppConstants
from nvflare.app_common.app_event_type import AppEventType
from nvflare.widgets.info_collector import InfoCollector

from fedbrats.runtime.constants import DICE_METRICS, MEAN_DICE, N_CASES
from fedbrats.runtime.fl.model_selector import CaseWeightedModelSelector


class RunStatusReporting:
    """Mixin of a round workflow (:class:`fedbrats.runtime.fl.fedavg.FinalModelScoring`), which provides
    ``planned_rounds``, ``rounds_done``, ``model_selector_id`` and ``score_task_name``."""

    def status_event(self, event_type: str, fl_ctx: FLContext) -> None:
        """Keep each round's times and each site's validation Dice of each scored global model, and report them with
        the model selection to FLARE's ``show_stats`` (group ``fedbrats``), which ``fedbrats status`` reads."""
        now = time.time()
        if event_type == EventType.START_RUN:
            self._status = {"start": now, "rounds": [], "site_metrics": []}
            return
        status = getattr(self, "_status", None)
        if status is None:
            return
        site, metrics, model_round = None, None, None
        if event_type == AppEventType.ROUND_STARTED:
            start = round(now - status["start"], 2)
            status["rounds"].append({"round": fl_ctx.get_prop(AppConstants.CURRENT_ROUND), "start": start})
        elif event_type == AppEventType.ROUND_DONE and status["rounds"]:
            status["rounds"][-1]["end"] = round(now - status["start"], 2)
        elif event_type == AppEventType.BEFORE_CONTRIBUTION_ACCEPT:
            model_round = fl_ctx.get_prop(AppConstants.CURRENT_ROUND)
            try:
                peer = fl_ctx.get_peer_context()
                site = peer.get_identity_name(default="?")
                metrics = from_shareable(peer.get_prop(FLContextKey.SHAREABLE)).get_meta_prop(MetaKey.INITIAL_METRICS)
            except Exception:
                metrics = None
        elif event_type == EventType.AFTER_TASK_RESULT_FILTER:
            if fl_ctx.get_prop(FLContextKey.TASK_NAME) == self.score_task_name:
                model_round = self.rounds_done
                try:
                    site = fl_ctx.get_peer_context().get_identity_name(default="?")
                    dxo = from_shareable(fl_ctx.get_prop(FLContextKey.TASK_RESULT))
                    metrics = dxo.data if dxo.data_kind == DataKind.METRICS else None
                except Exception:
                    metrics = None
        elif event_type == InfoCollector.EVENT_TYPE_GET_STATS:
            collector = fl_ctx.get_prop(InfoCollector.CTX_KEY_STATS_COLLECTOR)
            selector = fl_ctx.get_engine().get_component(self.model_selector_id)
            info = {
                "server_time": now,
                "run_seconds": round(now - status["start"], 2),
                "planned_rounds": self.planned_rounds,
                "rounds_done": self.rounds_done,
                "rounds": [dict(r) for r in status["rounds"]],
                "site_metrics": list(status["site_metrics"]),
            }
            if isinstance(selector, CaseWeightedModelSelector):
                info["selection"] = selector.selection()
            if collector is not None:
                collector.add_info(group_name="fedbrats", info=info)
        if model_round and isinstance(metrics, dict):
            values = {k: metrics.get(k) for k in (*DICE_METRICS, MEAN_DICE)}
            keep = {k: float(v) for k, v in values.items() if isinstance(v, (int, float)) and math.isfinite(v)}
            if keep and isinstance(metrics.get(N_CASES), int):
                status["site_metrics"].append({"round": model_round, "site": site, N_CASES: metrics[N_CASES], **keep})

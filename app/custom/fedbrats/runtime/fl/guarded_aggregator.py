"""FLARE's weighted FedAvg aggregator that first refuses contributions that do not fit the global model."""

from typing import Any, Dict, List, Optional

from nvflare.apis.dxo import DXO, DataKind, from_shareable
from nvflare.apis.fl_constant import ReservedKey, ReturnCode
from nvflare.apis.fl_context import FLContext
from nvflare.apis.shareable import Shareable
from nvflare.app_common.abstract.model import ModelLearnableKey
from nvflare.app_common.aggregators.intime_accumulate_model_aggregator import InTimeAccumulateWeightedAggregator
from nvflare.app_common.app_constant import AppConstants
from nvflare.app_common.app_event_type import AppEventType

from fedbrats.runtime.fl.flare_compat import serialize_always
from fedbrats.runtime.update_guards import named, nonfinite_tensors, shape_of, update_problems


@serialize_always("min_clients", "expected_data_kind", "aggregation_weights")
class GuardedAggregator(InTimeAccumulateWeightedAggregator):
    """:class:`InTimeAccumulateWeightedAggregator` that refuses an update that is not finite, misses tensors of the
    global model, has tensors it does not have or tensors of another shape, and names the site in the log.

    ScatterAndGather averages the accepted updates. With fewer than ``min_clients`` accepted in a round,
    :meth:`aggregate` raises instead, which stops the job: a round never averages fewer sites than the job
    asked for. ``allowed_missing``: regular expression of tensors that the sites keep to themselves.
    """

    def __init__(
        self,
        min_clients: int = 1,
        allowed_missing: str = "",
        exclude_vars: Optional[str] = None,
        aggregation_weights: Optional[Dict[str, Any]] = None,
        expected_data_kind: str = DataKind.WEIGHT_DIFF,
        weigh_by_local_iter: bool = True,
    ):
        super().__init__(
            exclude_vars=exclude_vars,
            aggregation_weights=aggregation_weights,
            expected_data_kind=expected_data_kind,
            weigh_by_local_iter=weigh_by_local_iter,
        )
        self.min_clients = min_clients
        self.allowed_missing = allowed_missing
        self._shapes = None
        self._accepted: List[str] = []
        self._refused: Dict[str, List[str]] = {}

    def handle_event(self, event_type: str, fl_ctx: FLContext):
        super().handle_event(event_type, fl_ctx)
        if event_type == AppEventType.ROUND_STARTED:
            model = fl_ctx.get_prop(AppConstants.GLOBAL_MODEL)
            weights = model.get(ModelLearnableKey.WEIGHTS) if isinstance(model, dict) else None
            self._shapes = {k: shape_of(v) for k, v in weights.items()} if weights else None

    def accept(self, shareable: Shareable, fl_ctx: FLContext) -> bool:
        site = shareable.get_peer_prop(key=ReservedKey.IDENTITY_NAME, default="?")
        if shareable.get_return_code(ReturnCode.OK) == ReturnCode.OK:
            try:
                dxo = from_shareable(shareable)
            except Exception:
                dxo = None
            problems = self._problems(dxo)
            if problems:
                round_ = fl_ctx.get_prop(AppConstants.CURRENT_ROUND)
                self.log_error(fl_ctx, f"refused the update of {site} at round {round_}: {'; '.join(problems)}")
                self._refused[site] = problems
                return False
        accepted = super().accept(shareable, fl_ctx)
        if accepted:
            self._accepted.append(site)
        return accepted

    def _problems(self, dxo: Optional[DXO]) -> List[str]:
        """What is wrong with a contribution: its model weights against the global model's tensors; in a collection
        (SCAFFOLD's weights and controls), the weights so and every other part for NaN or Inf."""
        if dxo is None:
            return []
        if dxo.data_kind in (DataKind.WEIGHTS, DataKind.WEIGHT_DIFF):
            return update_problems(dxo.data, self._shapes, self.allowed_missing)
        if dxo.data_kind != DataKind.COLLECTION or not isinstance(dxo.data, dict):
            return []
        problems = []
        for name, part in dxo.data.items():
            if name == AppConstants.MODEL_WEIGHTS:
                problems += self._problems(part)
            elif isinstance(part, DXO) and isinstance(part.data, dict):
                bad = nonfinite_tensors(part.data)
                if bad:
                    problems.append(f"{name}: {len(bad)} tensors with NaN or Inf ({named(bad)})")
        return problems

    def aggregate(self, fl_ctx: FLContext) -> Shareable:
        accepted, refused = self._accepted, self._refused
        self._accepted, self._refused = [], {}
        round_ = fl_ctx.get_prop(AppConstants.CURRENT_ROUND)
        left_out = f"; refused: {', '.join(sorted(refused))}" if refused else ""
        if len(accepted) < self.min_clients:
            raise RuntimeError(
                f"round {round_}: {len(accepted)} update(s) accepted ({', '.join(accepted) or 'none'}), fewer than "
                f"min_clients {self.min_clients}{left_out}; stopping rather than averaging fewer sites"
            )
        if refused:
            self.log_warning(fl_ctx, f"round {round_}: averaging {', '.join(accepted)}{left_out}")
        return super().aggregate(fl_ctx)

"""Cross-site evaluation that leaves out the sites the training already lost."""

from nvflare.apis.fl_context import FLContext
from nvflare.apis.signal import Signal
from nvflare.app_common.workflows.cross_site_model_eval import CrossSiteModelEval

from fedbrats.runtime.fl.flare_compat import evaluation_sites, set_evaluation_sites
from fedbrats.runtime.fl.model_selector import CaseWeightedModelSelector


class LiveSitesCrossSiteModelEval(CrossSiteModelEval):
    """FLARE's cross-site evaluation, sent only to the sites not deemed disconnected during training.

    Each workflow keeps its own list of dead sites, and only the running workflow hears of a site deemed
    disconnected: a site the FedAvg workflow lost would be asked for its model and its scores again, and the
    evaluation would wait for it until its timeouts (hours). The lost sites are read from the model selector, which
    hears every event; a lost site then has no result at all, which the report shows as missing.
    """

    def __init__(self, *args, model_selector_id: str = "model_selector", **kwargs):
        super().__init__(*args, **kwargs)
        self.model_selector_id = model_selector_id

    def control_flow(self, abort_signal: Signal, fl_ctx: FLContext):
        engine = fl_ctx.get_engine()
        selector = engine.get_component(self.model_selector_id)
        lost = set(selector.lost) if isinstance(selector, CaseWeightedModelSelector) else set()
        if lost:
            sites = evaluation_sites(self) or [c.name for c in engine.get_clients()]
            set_evaluation_sites(self, [s for s in sites if s not in lost])
            self.log_warning(
                fl_ctx, f"sites lost during the run, left out of the cross-site evaluation: {sorted(lost)}"
            )
        super().control_flow(abort_signal, fl_ctx)

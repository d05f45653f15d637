"""What each aggregation method (:mod:`fedbrats.runtime.fl.algorithms`) adds to a site's round, over FLARE's helpers.

The executor calls, in a training round: :meth:`SiteMethod.received_model` on the task's data, :meth:`~SiteMethod.hooks`
for the local steps, :meth:`~SiteMethod.after_training`, :meth:`~SiteMethod.personal_engine` (the model scored and kept
as the site's local model) and :meth:`~SiteMethod.reply` on the weights it sends.
"""

import copy
import os
from typing import Any, Callable, Dict, Iterable, Mapping, Optional

import torch
from nvflare.apis.dxo import DXO, DataKind, MetaKey
from nvflare.app_common.app_constant import AlgorithmConstants, AppConstants
from nvflare.app_opt.pt.ditto import PTDittoHelper
from nvflare.app_opt.pt.fedproxloss import PTFedProxLoss
from nvflare.app_opt.pt.scaffold import PTScaffoldHelper

from fedbrats.runtime import distributed
from fedbrats.runtime.engine import SegmentationEngine
from fedbrats.runtime.fl.algorithms import DITTO, FEDPROX, SCAFFOLD, algorithm_arguments


def frozen_copy(model: torch.nn.Module) -> torch.nn.Module:
    """The model as it is now, without gradients: the global model a round started from."""
    return copy.deepcopy(model).requires_grad_(False)


class SiteMethod:
    """FedAvg: the engine's local training, the weights sent as they are."""

    local_model = "local model"
    """What the site's logs call the model :meth:`personal_engine` gives."""

    def __init__(self, args: Mapping[str, Any]):
        self.args = dict(args)

    def setup(self, engine: SegmentationEngine, app_dir: str) -> None:
        """Once, when the site's engine exists."""

    def received_model(self, dxo: DXO) -> DXO:
        """The global model's DXO in a training task's data."""
        return dxo

    def hooks(self, engine: SegmentationEngine) -> Dict[str, Callable]:
        """Keyword arguments of :meth:`SegmentationEngine.train_round` (``regulariser``, ``after_step``); called with
        the received global model loaded."""
        return {}

    def after_training(self, engine: SegmentationEngine) -> None:
        """Once the round's local steps are done and their weights are finite."""

    def personal_engine(
        self, engine: SegmentationEngine, loader: Iterable, should_stop: Callable[[], bool]
    ) -> SegmentationEngine:
        """The engine whose model is this site's local model of the round (validated, kept if best, and sent to the
        cross-site evaluation)."""
        return engine

    def reply(self, weights: DXO) -> DXO:
        """What the site sends of its round."""
        return weights


class FedProxSite(SiteMethod):
    """FedProx: FLARE's ``PTFedProxLoss`` to the received global model in every local step."""

    def hooks(self, engine: SegmentationEngine) -> Dict[str, Callable]:
        anchor = frozen_copy(engine.model)
        proximal = PTFedProxLoss(mu=self.args["mu"])
        return {"regulariser": lambda model: proximal(model, anchor)}


class ScaffoldSite(SiteMethod):
    """SCAFFOLD with FLARE's ``PTScaffoldHelper``: the server's controls come with the global model, every optimiser
    step is corrected by them, and the change of the site's controls goes back with the weights.

    FLARE's helper applies the correction as a plain gradient step at the optimiser's learning rate, as SCAFFOLD's
    SGD does; with the product's Adam it corrects the drift of Adam's steps, measured in the same units.
    """

    def setup(self, engine: SegmentationEngine, app_dir: str) -> None:
        self.helper = PTScaffoldHelper()
        self.helper.init(engine.model)

    def received_model(self, dxo: DXO) -> DXO:
        if dxo.data_kind != DataKind.COLLECTION:
            raise ValueError(f"SCAFFOLD expects the global model with its controls, got {dxo.data_kind}")
        self.helper.load_global_controls(dxo.data[AlgorithmConstants.SCAFFOLD_CTRL_GLOBAL].data)
        return dxo.data[AppConstants.MODEL_WEIGHTS]

    def hooks(self, engine: SegmentationEngine) -> Dict[str, Callable]:
        self.anchor = frozen_copy(engine.model)
        self.controls = self.helper.get_params()
        return {"after_step": lambda model: self.helper.model_update(model, engine.learning_rate, *self.controls)}

    def after_training(self, engine: SegmentationEngine) -> None:
        self.helper.terms_update(engine.model, engine.learning_rate, *self.controls, self.anchor)

    def reply(self, weights: DXO) -> DXO:
        steps = weights.get_meta_prop(MetaKey.NUM_STEPS_CURRENT_ROUND)
        controls = DXO(
            DataKind.WEIGHT_DIFF,
            data=self.helper.get_delta_controls(),
            meta={MetaKey.NUM_STEPS_CURRENT_ROUND: steps},
        )
        data = {AppConstants.MODEL_WEIGHTS: weights, AlgorithmConstants.SCAFFOLD_CTRL_DIFF: controls}
        # the in-time selection reads the global model's scores from the reply's own meta
        return DXO(DataKind.COLLECTION, data=data, meta=weights.meta)


class DittoHelper(PTDittoHelper):
    """FLARE's ``PTDittoHelper`` over a second engine: the personal model, its optimiser and the file it persists in
    between rounds. ``local_train`` runs the engine's own local round with Ditto's proximal term."""

    def __init__(self, engine: SegmentationEngine, app_dir: str, ditto_lambda: float):
        super().__init__(engine.loss_fn, engine.model, engine.optimizer, engine.device, app_dir, ditto_lambda)
        self.engine = engine

    def local_train(self, train_loader, model_global, abort_signal, writer=None):
        should_stop = abort_signal if callable(abort_signal) else lambda: abort_signal.triggered
        return self.engine.train_round(
            train_loader, should_stop, regulariser=lambda model: self.prox_criterion(model, model_global)
        )


class DittoSite(SiteMethod):
    """Ditto: besides the global model's local round (sent as in FedAvg), a personal model trains as many steps, held
    near the received global model by FLARE's Ditto proximal term; the personal model is the site's local model."""

    local_model = "personal model"

    def setup(self, engine: SegmentationEngine, app_dir: str) -> None:
        personal = SegmentationEngine(engine.settings, engine.device)
        self.helper = DittoHelper(personal, os.path.join(app_dir, "ditto"), self.args["lambda"])
        os.makedirs(os.path.join(app_dir, "ditto"), exist_ok=True)
        self.loaded = False

    def hooks(self, engine: SegmentationEngine) -> Dict[str, Callable]:
        self.anchor = frozen_copy(engine.model)
        if not self.loaded:  # the personal model stays in memory between rounds; its file only starts it
            self.helper.load_model(self.anchor.state_dict())
            self.loaded = True
        self.helper.engine.learning_rate = engine.learning_rate
        return {}

    def personal_engine(
        self, engine: SegmentationEngine, loader: Iterable, should_stop: Callable[[], bool]
    ) -> SegmentationEngine:
        self.helper.local_train(loader, self.anchor, should_stop)
        self.helper.epoch_global += 1
        if distributed.is_main():  # with several ranks, each holds the same personal model: rank 0 writes it
            self.helper.save_model()
        return self.helper.engine


SITE_METHODS = {FEDPROX: FedProxSite, SCAFFOLD: ScaffoldSite, DITTO: DittoSite}


def site_method(name: str, args: Optional[Mapping[str, Any]] = None) -> SiteMethod:
    """The site's part of method ``name`` with its arguments (defaults filled in)."""
    return SITE_METHODS.get(name, SiteMethod)(algorithm_arguments(name, args))

"""The server's models of an evaluation-only job: checkpoints the job carries, served to FLARE's cross-site
evaluation."""

import os
from typing import Dict, List, Mapping

import torch
from nvflare.apis.dxo import DXO, DataKind
from nvflare.apis.fl_context import FLContext
from nvflare.app_common.abstract.model_locator import ModelLocator

MODELS_FOLDER = "models"
"""Folder of the app's ``config/`` that holds the job's checkpoints."""


def read_weights(path: str) -> Dict[str, torch.Tensor]:
    """The weights of a checkpoint of tensors: its ``"model"`` entry (the product's and FLARE's persistor's files) or
    the whole file (a bare state dict)."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    state = checkpoint.get("model", checkpoint) if isinstance(checkpoint, dict) else checkpoint
    if not isinstance(state, Mapping):
        raise ValueError(f"{path} holds no state dict ({type(state).__name__})")
    return {k: torch.as_tensor(v) for k, v in state.items()}


class GivenModelLocator(ModelLocator):
    """Serves the checkpoints ``models`` (name -> path relative to the server app's ``config/`` folder, or absolute)
    as the server's models; FLARE's cross-site evaluation names each ``SRV_<name>``."""

    def __init__(self, models: Dict[str, str]):
        super().__init__()
        self.models = dict(models)

    def get_model_names(self, fl_ctx: FLContext) -> List[str]:
        return list(self.models)

    def locate_model(self, model_name: str, fl_ctx: FLContext) -> DXO:
        job_id = fl_ctx.get_job_id()
        path = os.path.join(fl_ctx.get_engine().get_workspace().get_app_config_dir(job_id), self.models[model_name])
        weights = read_weights(path)
        self.log_info(fl_ctx, f"model {model_name}: {len(weights)} tensors from {path}")
        return DXO(DataKind.WEIGHTS, data={k: v.detach().cpu().numpy() for k, v in weights.items()})

"""SegResNetVAE (Myronenko 2018) for the 4 BraTS modalities and 3 nested tumour regions."""

from typing import Callable, Optional, Sequence

import torch
from monai.inferers import sliding_window_inference
from monai.networks.nets import SegResNetVAE

from fedbrats.runtime.constants import MODALITIES, REGIONS
from fedbrats.runtime.settings import TrainSettings

_DEFAULTS = TrainSettings()


class BratsSegResNetVAE(SegResNetVAE):
    """SegResNetVAE whose VAE branch is sized for the training crop.

    In training mode ``forward`` returns ``(logits, vae_loss)``; in eval mode ``(logits, None)``.
    With ``seed``, torch's generator is seeded first, so the initial weights depend on the seed alone and the
    FLARE server's initial global model is the same in every run of a job.
    """

    def __init__(
        self,
        crop: Sequence[int] = _DEFAULTS.crop,
        init_filters: int = _DEFAULTS.init_filters,
        blocks_down: Sequence[int] = _DEFAULTS.blocks_down,
        blocks_up: Sequence[int] = _DEFAULTS.blocks_up,
        dropout: float = _DEFAULTS.dropout,
        seed: Optional[int] = None,
        in_channels: int = len(MODALITIES),
    ):
        if seed is not None:
            torch.manual_seed(int(seed))
        super().__init__(
            spatial_dims=3,
            input_image_size=tuple(int(c) for c in crop),
            in_channels=int(in_channels),
            out_channels=len(REGIONS),
            init_filters=int(init_filters),
            blocks_down=tuple(blocks_down),
            blocks_up=tuple(blocks_up),
            dropout_prob=dropout,
        )
        self._crop, self._dropout, self._seed = list(crop), dropout, seed  # what FLARE's Job API writes of the model


def build_model(settings: TrainSettings = None) -> BratsSegResNetVAE:
    """The model of these settings."""
    return BratsSegResNetVAE(**(settings or TrainSettings()).model_kwargs())


def segmentation_logits(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Segmentation output only, for sliding-window inference."""
    return model(images)[0]


Logits = Callable[[torch.Tensor], torch.Tensor]
"""Maps a preprocessed batch of the model's input channels (1, C, x, y, z) to region logits (1, 3, x, y, z) on the
same grid, on the CPU."""


def sliding_window_logits(model: torch.nn.Module, settings: TrainSettings, device: torch.device) -> Logits:
    """Sliding-window logits of ``model`` with the window of its training settings; AMP on CUDA if enabled."""
    use_amp = settings.amp and device.type == "cuda"

    @torch.no_grad()
    def logits(images: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=device.type, enabled=use_amp):
            out = sliding_window_inference(
                images.to(device),
                roi_size=settings.window,
                sw_batch_size=settings.sw_batch_size,
                predictor=lambda x: segmentation_logits(model, x),
                overlap=settings.sw_overlap,
            )
        return out.float().cpu()

    return logits


def load_weights(model: torch.nn.Module, path: str) -> torch.nn.Module:
    """Load a checkpoint written by this product or by FLARE's PyTorch persistor."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    state = checkpoint.get("model", checkpoint) if isinstance(checkpoint, dict) else checkpoint
    model.load_state_dict({k: torch.as_tensor(v) for k, v in state.items()})
    return model

"""Training steps with simulated clicks learn; a validation scores the Dice after its clicks and before any."""

import numpy as np
import pytest
import torch
from builders import tumour_case

from fedbrats.evaluation.regions import label_regions
from fedbrats.runtime.constants import DICE_METRICS, INTERACTIVE_CHANNELS, MEAN_DICE, N_CASES
from fedbrats.runtime.engine import SegmentationEngine
from fedbrats.runtime.interactive.engine import InteractiveEngine, corrupted, site_engine
from fedbrats.runtime.settings import TrainSettings

SETTINGS = TrainSettings.from_dict(
    {
        "crop": [16, 16, 16],
        "init_filters": 8,
        "num_threads": 2,
        "interactive": True,
        "max_clicks": 2,
        "eval_clicks": 2,
        "learning_rate": 3e-3,
        "loss": "dice_bce",
        "dropout": 0.0,
    }
)


@pytest.fixture(scope="module")
def batch():
    images, labels = tumour_case((16, 16, 16), seed=3, radius=4)
    image = torch.from_numpy(np.stack(images))
    image = (image - image.mean()) / image.std()
    return {"image": image[None], "label": torch.from_numpy(label_regions(labels)).float()[None]}


def test_site_engine_picks_the_interactive_engine_by_the_settings():
    torch.manual_seed(0)
    assert isinstance(site_engine(SETTINGS), InteractiveEngine)
    assert type(site_engine(SETTINGS.replace(interactive=False))) is SegmentationEngine
    assert site_engine(SETTINGS).model.in_channels == INTERACTIVE_CHANNELS


def test_corrupted_labels_grow_shrink_or_lose_regions():
    labels = torch.zeros(4, 3, 16, 16, 16)
    labels[:, :, 4:12, 4:12, 4:12] = 1
    out = corrupted(labels, np.random.default_rng(0))
    assert out.shape == labels.shape and set(out.unique().tolist()) <= {0.0, 1.0}
    assert not torch.equal(out, labels)


def test_training_with_simulated_clicks_reduces_the_loss(batch):
    torch.manual_seed(0)
    engine = InteractiveEngine(SETTINGS)
    losses = [engine.train_steps([batch], 1)["loss_segmentation"] for _ in range(8)]
    assert np.mean(losses[-3:]) < np.mean(losses[:3])


def test_validation_scores_after_the_clicks_and_before_any(batch):
    torch.manual_seed(0)
    engine = InteractiveEngine(SETTINGS)
    metrics = engine.validate([batch])
    assert metrics[N_CASES] == 1 and metrics["clicks"] == 2
    for name in DICE_METRICS + (MEAN_DICE,):
        assert 0 <= metrics[f"{name}_0_clicks"] <= 1 and 0 <= metrics[name] <= 1
    assert metrics[MEAN_DICE] >= metrics[f"{MEAN_DICE}_0_clicks"]  # clicks force their balls into the regions

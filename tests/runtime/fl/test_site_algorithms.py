import pytest
import torch

from fedbrats.runtime.engine import SegmentationEngine
from fedbrats.runtime.fl.site_algorithms import site_method


def test_a_fedprox_site_adds_the_jobs_proximal_weight_times_the_distance_to_the_received_model(tiny_settings):
    engine = SegmentationEngine(tiny_settings)
    regulariser = site_method("fedprox", {"mu": 0.5}).hooks(engine)["regulariser"]
    assert regulariser(engine.model).detach().item() == 0.0
    with torch.no_grad():
        for parameter in engine.model.parameters():
            parameter.add_(0.1)
    weights = sum(parameter.numel() for parameter in engine.model.parameters())
    assert regulariser(engine.model).detach().item() == pytest.approx(0.5 / 2 * weights * 0.1**2, rel=1e-3)
    assert "regulariser" not in site_method("fedavg").hooks(engine)

import numpy as np
import pytest
import torch
from monai.utils import set_determinism

from fedbrats.runtime.constants import (
    DICE_METRICS,
    HD95_METRICS,
    MEAN_DICE,
    N_CASES,
    PER_CASE,
    SCORE_METRICS,
    SENSITIVITY_METRICS,
)
from fedbrats.runtime.data.loaders import site_loader
from fedbrats.runtime.engine import SegmentationEngine, evaluate, region_masks
from fedbrats.runtime.fl.algorithms import algorithm_arguments
from fedbrats.runtime.model import build_model, load_weights
from fedbrats.runtime.settings import TrainSettings


def test_model_defaults_follow_the_reference():
    s = TrainSettings()
    assert s.crop == (224, 224, 144) and s.init_filters == 16 and s.dropout == 0.2
    assert s.blocks_down == (1, 2, 2, 4) and s.blocks_up == (1, 1, 1)
    assert s.learning_rate == 1e-4 and s.weight_decay == 1e-5 and s.vae_weight == 0.1


def test_model_shapes_in_train_and_eval_mode(tiny_settings):
    model = build_model(tiny_settings)
    x = torch.randn(1, 4, 32, 32, 32)
    logits, vae_loss = model(x)
    assert logits.shape == (1, 3, 32, 32, 32) and vae_loss.ndim == 0
    model.eval()
    assert model(x)[1] is None


def test_unknown_setting_is_refused():
    with pytest.raises(ValueError, match="unknown training settings \\['crpo'\\]"):
        TrainSettings.from_dict({"crpo": [1, 2, 3]})


@pytest.mark.parametrize("window", [{"sw_overlap": 1.0}, {"sw_overlap": -0.1}, {"sw_batch_size": 0}])
def test_impossible_sliding_window_is_refused(window):
    with pytest.raises(ValueError, match="sw_overlap must be at least 0 and below 1 and sw_batch_size at least 1"):
        TrainSettings.from_dict(window)


def test_training_steps_lower_the_loss(tiny_site, tiny_settings):
    torch.manual_seed(0)
    root, datalist = tiny_site
    settings = tiny_settings.replace(learning_rate=1e-3, dropout=0.0)
    engine = SegmentationEngine(settings)
    loader = site_loader(datalist, root, "training", settings, train=True)
    losses = [engine.train_epoch(loader)["loss"] for _ in range(8)]
    assert engine.train_epoch(loader)["steps"] == 2
    assert np.mean(losses[-3:]) < 0.9 * np.mean(losses[:3]), losses


def test_max_steps_and_stop_request(tiny_site, tiny_settings):
    root, datalist = tiny_site
    engine = SegmentationEngine(tiny_settings.replace(max_steps_per_epoch=1))
    loader = site_loader(datalist, root, "training", tiny_settings, train=True)
    assert engine.train_epoch(loader)["steps"] == 1
    assert engine.train_epoch(loader, should_stop=lambda: True)["steps"] == 0


class ThresholdModel(torch.nn.Module):
    """Predicts region k wherever input channel k is positive; returns (logits, None) like SegResNetVAE."""

    def forward(self, x):
        return torch.where(x[:, :3] > 0, 10.0, -10.0), None


def _case(pred_masks, true_masks):
    image = torch.zeros(1, 4, 32, 32, 32)
    label = torch.zeros(1, 3, 32, 32, 32)
    for k, (p, t) in enumerate(zip(pred_masks, true_masks)):
        image[0, k][p] = 1.0
        label[0, k][t] = 1.0
    return {"image": image, "label": label}


def test_validation_dice_matches_a_hand_computed_case(tiny_settings):
    block = lambda a, b: (slice(a, b), slice(0, 2), slice(0, 2))  # noqa: E731  (b-a)*4 voxels
    empty = (slice(0, 0),) * 3
    case1 = _case(
        pred_masks=[block(0, 2), block(0, 4), empty],
        true_masks=[block(1, 3), block(0, 4), empty],
    )  # TC: |P|=8 |T|=8 overlap 4 -> 0.5; WT identical -> 1; ET empty in both -> 1
    case2 = _case(
        pred_masks=[block(0, 4), block(0, 1), block(0, 1)],
        true_masks=[block(0, 1), block(0, 4), empty],
    )  # TC: 16 vs 4 overlap 4 -> 0.4; WT: 4 vs 16 overlap 4 -> 0.4; ET predicted but absent -> 0
    metrics = evaluate(ThresholdModel(), [case1, case2], tiny_settings, torch.device("cpu"))
    tc, wt, et = (metrics[m] for m in DICE_METRICS)
    assert tc == pytest.approx((0.5 + 0.4) / 2)
    assert wt == pytest.approx((1.0 + 0.4) / 2)
    assert et == pytest.approx((1.0 + 0.0) / 2)
    assert metrics[MEAN_DICE] == pytest.approx((tc + wt + et) / 3)
    assert metrics[N_CASES] == 2
    # HD95 in mm at pixdim 1: case 1 TC: half the voxels 1 mm off; case 2 TC and WT: 4 voxels long against 1,
    # the far end 3 mm away; ET: empty in both (0), predicted but absent (373.13)
    assert [metrics[m] for m in HD95_METRICS] == pytest.approx([(1 + 3) / 2, (0 + 3) / 2, (0 + 373.13) / 2])
    assert metrics[PER_CASE]["dice_tc"] == pytest.approx([0.5, 0.4])
    assert metrics[PER_CASE]["hd95_et"] == pytest.approx([0.0, 373.13])
    assert set(metrics[PER_CASE]) == set(SCORE_METRICS)
    # over all 32^3 voxels: case 1 TC 4 of 8 found, 4 false positives; case 2 WT 4 of 16 found, ET 4 false positives
    # where the reference has none (sensitivity 0 by the rule for an absent region)
    assert metrics[PER_CASE]["sensitivity_tc"] == pytest.approx([0.5, 1.0])
    assert metrics[PER_CASE]["sensitivity_wt"] == pytest.approx([1.0, 0.25])
    assert metrics[PER_CASE]["sensitivity_et"] == [1.0, 0.0]
    assert [metrics[m] for m in SENSITIVITY_METRICS] == pytest.approx([0.75, 0.625, 0.5])
    assert metrics[PER_CASE]["specificity_tc"] == pytest.approx([(32760 - 4) / 32760, (32764 - 12) / 32764])
    assert metrics[PER_CASE]["specificity_et"] == pytest.approx([1.0, (32768 - 4) / 32768])
    assert metrics["specificity_wt"] == pytest.approx(1.0)


def test_validate_on_whole_volumes_and_reload_weights(tiny_site, tiny_settings, tmp_path):
    root, datalist = tiny_site
    engine = SegmentationEngine(tiny_settings)
    metrics = engine.validate(site_loader(datalist, root, "validation", tiny_settings, train=False))
    assert metrics[N_CASES] == 1 and all(0 <= metrics[m] <= 1 for m in DICE_METRICS)
    assert all(0 <= metrics[m] <= 373.13 for m in HD95_METRICS)
    path = tmp_path / "m.pt"
    torch.save({"model": engine.get_weights()}, path)
    other = load_weights(build_model(tiny_settings), str(path))
    for a, b in zip(other.state_dict().values(), engine.model.state_dict().values()):
        assert np.array_equal(a.numpy(), b.numpy())


def test_small_enhancing_tumour_is_dropped_when_asked(tiny_settings):
    logits = torch.full((2, 3, 8, 8, 8), -10.0)
    logits[:, :2, :4] = 10.0  # TC and WT: 256 voxels each
    logits[0, 2, :1, :2, :2] = 10.0  # case 0: ET of 4 voxels
    logits[1, 2, :2] = 10.0  # case 1: ET of 128 voxels
    kept = region_masks(logits, tiny_settings)
    assert kept[:, 2].flatten(1).sum(1).tolist() == [4, 128]
    dropped = region_masks(logits, tiny_settings.replace(pixdim=2.0, et_min_volume=100.0))  # 8 mm^3 per voxel
    assert dropped[:, 2].flatten(1).sum(1).tolist() == [0, 128]
    assert torch.equal(dropped[:, :2], kept[:, :2])


def test_step_budget_spans_passes_and_rounds_follow_the_settings(tiny_site, tiny_settings):
    root, datalist = tiny_site
    loader = site_loader(datalist, root, "training", tiny_settings, train=True)  # 2 cases: 2 steps a pass
    engine = SegmentationEngine(tiny_settings)
    assert engine.train_steps(loader, 5)["steps"] == 5
    assert SegmentationEngine(tiny_settings.replace(local_steps=3)).train_round(loader)["steps"] == 3
    assert SegmentationEngine(tiny_settings.replace(local_epochs=2)).train_round(loader)["steps"] == 4
    capped = tiny_settings.replace(local_epochs=3, max_steps_per_epoch=1)
    assert SegmentationEngine(capped).train_round(loader)["steps"] == 3


def test_same_seed_gives_the_same_model(tiny_site, tiny_settings):
    root, datalist = tiny_site
    weights = []
    for _ in range(2):
        set_determinism(tiny_settings.seed)
        engine = SegmentationEngine(tiny_settings.replace(batch_size=2, loss="dice_bce"))
        engine.train_steps(site_loader(datalist, root, "training", engine.settings, train=True), 2)
        weights.append(engine.get_weights())
    set_determinism(None)
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_cosine_schedule_decays_the_learning_rate_over_the_run(tiny_settings):
    engine = SegmentationEngine(tiny_settings.replace(learning_rate=1e-3, lr_schedule="cosine"), torch.device("cpu"))
    rates = [engine.set_progress(p) for p in (0.0, 0.5, 0.9, 1.0)]
    assert rates == pytest.approx([1e-3, 5e-4, 1e-3 * 0.5 * (1 + np.cos(0.9 * np.pi)), 0.0])
    assert engine.optimizer.param_groups[0]["lr"] == pytest.approx(0.0)
    constant = SegmentationEngine(tiny_settings.replace(learning_rate=1e-3), torch.device("cpu"))
    assert constant.set_progress(0.7) == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="lr_schedule"):
        tiny_settings.replace(lr_schedule="step")


def test_initial_weights_follow_the_seed_alone(tiny_settings):
    first = build_model(tiny_settings).state_dict()
    torch.rand(10)
    again = build_model(tiny_settings).state_dict()
    other = build_model(tiny_settings.replace(seed=1)).state_dict()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_proximal_regulariser_keeps_the_weights_near_the_global_model(tiny_site, tiny_settings):
    from nvflare.app_opt.pt.fedproxloss import PTFedProxLoss

    root, datalist = tiny_site
    settings = tiny_settings.replace(learning_rate=1e-2, local_steps=4)
    loader = site_loader(datalist, root, "training", settings, train=True)
    drift = {}
    for mu in (0.0, 100.0):
        set_determinism(0)
        engine = SegmentationEngine(settings)
        anchor = build_model(settings).requires_grad_(False)
        engine.set_weights(anchor.state_dict())
        proximal = PTFedProxLoss(mu=mu)
        assert engine.train_round(loader, regulariser=lambda m, f=proximal, a=anchor: f(m, a))["steps"] == 4
        pairs = zip(engine.model.parameters(), anchor.parameters())
        drift[mu] = sum(float(((p.detach() - a) ** 2).sum()) for p, a in pairs)
    assert drift[100.0] < 0.5 * drift[0.0], drift
    with pytest.raises(ValueError, match="mu must be a number of at least 0"):
        algorithm_arguments("fedprox", {"mu": -1.0})

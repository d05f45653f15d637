import json
import os

import pytest
import torch
from builders import TINY_TRAINING, write_fl_model
from monai.bundle import run as run_bundle

from fedbrats.cli import main
from fedbrats.runtime.model import build_model
from fedbrats.runtime.settings import TrainSettings


def scores(tc, wt, et, n):
    return {"dice_tc": tc, "dice_wt": wt, "dice_et": et, "mean_dice": (tc + wt + et) / 3, "n_cases": n}


def finished_run(ws):
    """A simulator workspace as a 3-round run leaves it: server models, selection record, cross-site results."""
    job = os.path.join(ws, "server", "simulate_job")
    model = write_fl_model(job, TINY_TRAINING)
    app = os.path.dirname(model)
    with open(os.path.join(app, "config", "config_fed_server.json"), "w") as f:
        json.dump({"workflows": [{"id": "fedavg", "args": {"num_rounds": 3}}]}, f)
    history = [{"round": r, "score": 0.1 * r, "sites": {}} for r in (1, 2, 3)]
    with open(os.path.join(app, "global_model_selection.json"), "w") as f:
        json.dump({"best_round": 3, "best_score": 0.3, "history": history}, f)
    os.makedirs(os.path.join(job, "cross_site_val"))
    results = {
        "site-1": {"SRV_FL_global_model.pt": scores(0.6, 0.9, 0.3, 2)},
        "site-2": {"SRV_FL_global_model.pt": scores(0.3, 0.6, 0.0, 1)},
    }
    with open(os.path.join(job, "cross_site_val", "cross_val_results.json"), "w") as f:
        json.dump(results, f)
    return model


def test_model_card_is_a_monai_bundle_with_settings_rounds_and_cross_site_scores(tmp_path, capsys):
    model = finished_run(str(tmp_path / "ws"))
    assert main(["model-card", model]) == 0
    bundle = os.path.join(os.path.dirname(model), "FL_global_model_bundle")
    card = json.load(open(os.path.join(bundle, "configs", "metadata.json")))
    assert card["monai_version"] and card["pytorch_version"] and card["version"]
    image = card["network_data_format"]["inputs"]["image"]
    assert image["num_channels"] == 4 and list(image["channel_def"].values()) == ["T1c", "T1", "T2", "FLAIR"]
    assert "z-score" in image["preprocessing"] and "1 mm" in image["preprocessing"]
    pred = card["network_data_format"]["outputs"]["pred"]
    assert pred["num_channels"] == 3 and pred["channel_def"]["2"] == "Enhancing tumor"
    info = card["fedbrats"]
    assert info["model"] == "final global model" and info["round"] == 3 and info["num_rounds"] == 3
    assert info["training_settings"] == TrainSettings.from_dict(TINY_TRAINING).to_dict()
    average = info["cross_site_evaluation"]["average"]
    assert average["dice_tc"] == pytest.approx((0.6 * 2 + 0.3) / 3) and average["n_cases"] == 3
    assert card["eval_metrics"]["dice_wt"] == pytest.approx((0.9 * 2 + 0.6) / 3)
    weights = torch.load(os.path.join(bundle, "models", "model.pt"))
    build_model(TrainSettings.from_dict(TINY_TRAINING)).load_state_dict(weights)
    assert "cross_val_results.json" in capsys.readouterr().out


@pytest.mark.filterwarnings("ignore:parsing config_file")
def test_bundle_inference_config_runs_with_monai_bundle(tiny_site, tmp_path):
    root, datalist = tiny_site
    model = write_fl_model(str(tmp_path / "job"), TINY_TRAINING)
    bundle = str(tmp_path / "bundle")
    assert main(["model-card", model, "--out", bundle]) == 0
    out = str(tmp_path / "eval")
    run_bundle(
        config_file=os.path.join(bundle, "configs", "inference.json"),
        bundle_root=bundle,
        dataset_dir=root,
        datalist=datalist,
        output_dir=out,
        device="cpu",
    )
    assert os.listdir(out) == ["Case_004_seg.nii.gz"]

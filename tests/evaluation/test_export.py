"""``fedbrats export``: TorchScript and ONNX exports of a model's segmentation branch match PyTorch."""

import json
import os

import numpy as np
import onnxruntime
import pytest
import torch
from builders import TINY_TRAINING, write_fl_model

from fedbrats.cli import main
from fedbrats.evaluation.export import SegmentationOnly
from fedbrats.evaluation.export_check import compare
from fedbrats.evaluation.model_files import load_model, open_model

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    model = write_fl_model(str(folder / "job"), TINY_TRAINING)
    out = folder / "exported"
    args = [model, "--out", str(out), "--input-size", "32", "32", "24", "--repeats", "1", "--threads", "1"]
    assert main(["export", *args]) == 0
    return model, out


def test_exports_match_pytorch_on_the_check_input(exported):
    _, out = exported
    record = json.load(open(out / "export.json"))
    assert record["matches"] and record["input"]["shape"] == [1, 4, 32, 32, 24] and record["init_filters"] == 8
    assert record["pytorch"]["seconds"] > 0 and record["threads"] == 1
    for fmt, file in (("torchscript", "model.ts"), ("onnx", "model.onnx")):
        assert record[fmt]["file"] == file and os.path.getsize(out / file) == record[fmt]["bytes"]
        assert record[fmt]["max_abs_diff"] < 1e-4 and record[fmt]["seconds"] > 0, fmt
        assert (
            record[fmt]["dice"] == {"dice_tc": 1.0, "dice_wt": 1.0, "dice_et": 1.0}
            and record[fmt]["differing_voxels"] == 0
        )


def test_exported_graphs_return_logits_for_other_batch_and_spatial_sizes(exported):
    model, out = exported
    net = SegmentationOnly(load_model(open_model(model)))
    image = np.random.default_rng(1).standard_normal((2, 4, 40, 24, 32)).astype(np.float32)
    with torch.no_grad():
        reference = net(torch.from_numpy(image)).numpy()
        scripted = torch.jit.load(str(out / "model.ts"))(torch.from_numpy(image)).numpy()
    session = onnxruntime.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"] and [o.name for o in session.get_outputs()] == ["logits"]
    (from_onnx,) = session.run(None, {"image": image})
    assert reference.shape == (2, 3, 40, 24, 32)
    for logits in (scripted, from_onnx):
        assert logits.shape == reference.shape and compare(logits, reference)["max_abs_diff"] < 1e-4


def test_compare_counts_what_differs():
    reference = np.full((1, 3, 2, 2, 2), -1.0, np.float32)
    reference[0, 1, 0] = 2.0  # WT: 4 voxels
    logits = reference.copy()
    logits[0, 1, 0, 0, 0] = -0.5  # one WT voxel lost
    result = compare(logits, reference)
    assert result["dice"] == {"dice_tc": 1.0, "dice_wt": pytest.approx(6 / 7), "dice_et": 1.0}
    assert result["differing_voxels"] == 1 and result["max_abs_diff"] == 2.5 and not result["matches"]


def test_an_input_size_the_network_cannot_halve_is_refused(exported, tmp_path):
    model, _ = exported
    with pytest.raises(SystemExit, match=r"3 multiples of 8, got \[30, 32, 32\]"):
        main(["export", model, "--out", str(tmp_path), "--input-size", "30", "32", "32"])

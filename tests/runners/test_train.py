import json
import os

import pytest
import torch

from fedbrats.cli import main
from fedbrats.runtime.model import build_model
from fedbrats.runtime.settings import TrainSettings

TINY_FLAGS = ["--crop", "32", "32", "32", "--init-filters", "8", "--num-threads", "2"]


def test_central_training_command_writes_models_and_metrics(tiny_site, tmp_path, capsys):
    root, datalist = tiny_site
    out = tmp_path / "central"
    code = main(
        [
            "train",
            "--data-root",
            root,
            "--datalist",
            datalist,
            "--out",
            str(out),
            "--epochs",
            "2",
            "--crop",
            "32",
            "32",
            "32",
            "--init-filters",
            "8",
            "--num-threads",
            "2",
        ]
    )
    assert code == 0
    metrics = json.load(open(out / "metrics.json"))
    assert [h["epoch"] for h in metrics["history"]] == [1, 2]
    assert metrics["test_of_best_model"]["n_cases"] == 1
    assert (out / "best_model.pt").is_file() and (out / "last_model.pt").is_file()
    printed = capsys.readouterr().out
    assert "[central] step 4/4 (epoch 2)" in printed and "test (best model)" in printed


def test_bad_input_gives_one_clear_error(tiny_site, tmp_path, capsys):
    root, datalist = tiny_site
    entry = json.load(open(datalist))["validation"][0]
    os.remove(os.path.join(root, entry["label"]))
    out = tmp_path / "central"
    code = main(
        [
            "train",
            "--data-root",
            root,
            "--datalist",
            datalist,
            "--out",
            str(out),
            "--epochs",
            "1",
            "--crop",
            "32",
            "32",
            "32",
            "--init-filters",
            "8",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("fedbrats train: bad input: case Case_003, file ")
    assert err[-1].endswith("Case_003_seg.nii.gz: file not found")


def test_training_can_start_from_a_trained_model(tiny_site, tmp_path, capsys):
    root, datalist = tiny_site
    train = ["train", "--data-root", root, "--datalist", datalist, *TINY_FLAGS]
    assert main([*train, "--out", str(tmp_path / "first"), "--steps", "2"]) == 0
    trained = str(tmp_path / "first" / "last_model.pt")
    barely = ["--steps", "1", "--lr", "1e-9"]
    assert main([*train, "--out", str(tmp_path / "tuned"), *barely, "--init-model", trained]) == 0
    assert main([*train, "--out", str(tmp_path / "fresh"), *barely]) == 0
    assert f"[central] starting from {trained}" in capsys.readouterr().out

    def weights(name):
        return torch.load(tmp_path / name / "last_model.pt", weights_only=False)["model"]

    start, tuned, fresh = weights("first"), weights("tuned"), weights("fresh")
    assert all(torch.allclose(tuned[k], start[k], atol=1e-6) for k in start)
    assert not all(torch.allclose(fresh[k], start[k], atol=1e-6) for k in start)


def test_a_model_of_other_settings_is_refused_naming_the_file(tiny_site, tmp_path, capsys):
    root, datalist = tiny_site
    train = ["train", "--data-root", root, "--datalist", datalist, *TINY_FLAGS]
    other = tmp_path / "filters16.pt"
    settings = TrainSettings(init_filters=16)
    torch.save({"model": build_model(settings).state_dict(), "settings": settings.to_dict()}, other)
    with pytest.raises(SystemExit, match=rf"--init-model {other}: not a model of these settings"):
        main([*train, "--init-model", str(other)])  # its own settings, but --init-filters 8 given
    bare = tmp_path / "bare.pt"
    torch.save({"model": build_model(settings).state_dict()}, bare)
    assert main([*train, "--init-model", str(bare)]) == 2
    assert str(bare) in capsys.readouterr().err

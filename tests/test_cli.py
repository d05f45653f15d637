import json
import os

from fedbrats.tools.cli import main


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

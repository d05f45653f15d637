"""``fedbrats clicks``: NoC from known Dice curves, and the command's outputs on a tiny site."""

import json
import os

import pytest
import torch
from builders import write_site

from fedbrats.cli import main
from fedbrats.evaluation.clicks import clicks_to_reach, markdown, summary
from fedbrats.runtime.model import build_model
from fedbrats.runtime.settings import TrainSettings


def test_noc_counts_the_clicks_to_reach_a_dice_and_never_as_the_maximum():
    assert clicks_to_reach([0.2, 0.86, 0.95], 0.85, 2) == 1 and clicks_to_reach([0.2, 0.86], 0.9, 1) is None
    sessions = [
        {"dice": [[0.5, 0.9, 0.0], [0.88, 0.95, 0.0], [0.92, 0.95, 0.0]], "seconds": [1.0, 3.0]},
        {"dice": [[0.95, 0.5, 0.0], [0.95, 0.7, 0.0], [0.95, 0.8, 0.0]], "seconds": [2.0]},
    ]
    out = summary(sessions, 2)
    assert out["cases"] == 2 and out["dice"]["tc"] == pytest.approx([0.725, 0.915, 0.935])
    assert out["noc"]["tc"] == {"noc@85": 0.5, "noc@90": 1.0}
    assert out["noc"]["wt"] == {"noc@85": 1.0, "noc@90": 1.0} and out["never"]["wt"] == {"noc@85": 1, "noc@90": 1}
    assert out["noc"]["et"] == {"noc@85": 2.0, "noc@90": 2.0} and out["never"]["et"] == {"noc@85": 2, "noc@90": 2}
    assert out["seconds_per_click"] == 2.0


def test_the_command_writes_curves_noc_and_a_plot(tmp_path):
    root = str(tmp_path / "data")
    datalist = write_site(root, n_train=1, n_val=1, n_test=2)
    settings = TrainSettings.from_dict({"crop": [16, 16, 16], "init_filters": 8, "pixdim": 2.0, "interactive": True})
    model = str(tmp_path / "model.pt")
    torch.manual_seed(0)
    torch.save({"model": build_model(settings).state_dict(), "settings": settings.to_dict()}, model)
    out, docs = str(tmp_path / "out"), str(tmp_path / "docs")
    args = ["clicks", model, "--datalist", datalist, "--data-root", root, "--clicks", "3", "--out", out]
    assert main([*args, "--docs", docs, "--threads", "2"]) == 0
    result = json.load(open(os.path.join(out, "clicks.json")))
    assert set(result["sites"]) == {"site", "all"} and result["sites"]["all"]["cases"] == 2
    assert len(result["sites"]["site"]["dice"]["et"]) == 4 and result["sites"]["site"]["seconds_per_click"] > 0
    page = open(os.path.join(docs, "interactive.md")).read()
    assert "| site | TC | 2 |" in page and "Dice 3 clicks" in page and "![Dice against clicks](interactive.png)" in page
    assert os.path.getsize(os.path.join(docs, "interactive.png")) > 0


DOCS = os.path.join(os.path.dirname(__file__), "..", "..", "docs")


@pytest.mark.parametrize("name", ["interactive", "interactive-from-model"])
def test_the_interactive_pages_are_their_json_rendered(name):
    with open(os.path.join(DOCS, f"{name}.json")) as f:
        result = json.load(f)
    with open(os.path.join(DOCS, f"{name}.md")) as f:
        assert f.read() == markdown(result, f"{name}.png")
    assert os.path.isfile(os.path.join(DOCS, f"{name}.png"))
    assert result["clicks"] >= 10 and all(s["cases"] for s in result["sites"].values())

"""Training settings: unknown names refused, names of earlier versions' files ignored, values checked."""

import pytest

from fedbrats.runtime.settings import TrainSettings


def test_a_typo_is_refused_and_an_earlier_versions_name_is_ignored():
    with pytest.raises(ValueError, match="unknown training settings \\['crpo'\\]"):
        TrainSettings.from_dict({"crpo": [32, 32, 32]})
    settings = TrainSettings.from_dict({"crop": [32, 32, 32], "extra": {}})  # a model file of an earlier version
    assert settings.crop == (32, 32, 32) and "extra" not in settings.to_dict()


@pytest.mark.parametrize(
    "values, message",
    [({"crop": [8, 32, 32]}, "crop"), ({"loss": "mse"}, "loss"), ({"sw_overlap": 1.0}, "sw_overlap")],
)
def test_bad_values_are_refused(values, message):
    with pytest.raises(ValueError, match=message):
        TrainSettings.from_dict(values)

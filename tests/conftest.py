import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def tiny_site(tmp_path):
    """Data root with 2 training, 1 validation and 1 testing case of 32^3 voxels."""
    from builders import write_site

    root = tmp_path / "data"
    return str(root), write_site(str(root))


@pytest.fixture
def tiny_settings():
    from fedbrats.runtime.settings import TrainSettings

    return TrainSettings.from_dict({"crop": [32, 32, 32], "init_filters": 8, "num_threads": 2, "cache_rate": 1.0})

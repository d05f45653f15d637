"""A short real soak in FLARE's simulator: every process sampled every round."""

import pytest

from fedbrats.research.bench.soak import soak_simulator

pytestmark = pytest.mark.slow


def test_a_short_simulator_soak_samples_every_process_every_round(tmp_path):
    result = soak_simulator(str(tmp_path), rounds=3, cases=4)
    assert result["rounds_done"] == 3 and len(result["flare_s_per_round"]) == 3
    assert set(result["rss_MiB_per_round"]) == {"server", "site-1", "site-2"}
    for values in result["rss_MiB_per_round"].values():
        assert len(values) == 3 and all(v is not None and v > 100 for v in values)
    assert all(0 <= s < 30 for s in result["flare_s_per_round"])

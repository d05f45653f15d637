"""The soak's bookkeeping: who each FLARE process is, memory at each round's end, growth between medians."""

import pytest

from fedbrats.research.bench.soak import growth, per_round, role, second_half_growth


def test_flare_processes_are_named_by_participant():
    assert role("python -m nvflare.private.fed.app.simulator.simulator job -w ws -c site-1,site-2 -t 2") == "server"
    assert role("python -m nvflare.private.fed.app.simulator.simulator_worker -o ws/site-2 --client site-2") == "site-2"
    kit = "/p/poc/example_project/prod_00"
    assert role(f"python3 -u -m nvflare.private.fed.app.server.server_train -m {kit}/server -s fed_server.json") == (
        "server"
    )
    assert role(f"python3 -m nvflare.private.fed.app.client.worker_process -m {kit}/site-1 -w x") == "site-1 job"
    assert role("python -m pytest tests") is None


def test_memory_at_each_rounds_end_and_its_growth():
    samples = [(0.5, "server", 100 * 2**20), (1.5, "server", 110 * 2**20), (2.5, "server", 121 * 2**20)]
    samples += [(1.2, "site-1", 50 * 2**20)]
    memory = per_round(samples, [1.0, 2.0, 3.0])
    assert memory == {"server": [100.0, 110.0, 121.0], "site-1": [None, 50.0, 50.0]}
    assert growth(memory["server"], start=2, window=1) == pytest.approx(0.1)
    assert growth(memory["site-1"], start=1, window=1) is None and growth([1.0], start=5) is None


def test_growth_compares_medians_so_a_last_round_peak_does_not_count():
    flat = [100.0] * 4 + [120.0, 121.0, 119.0, 120.0, 120.0] + [122.0] * 20
    flat[-1] = 400.0  # the last round ended at a validation peak
    assert growth(flat) == pytest.approx(122 / 120 - 1, abs=1e-4)
    climbing = [100.0 + r for r in range(30)]
    assert growth(climbing) == pytest.approx(127 / 106 - 1, abs=1e-4)  # medians of rounds 5-9 and 26-30


def test_second_half_growth_leaves_out_single_round_peaks():
    warm_up_then_flat = [100.0 + min(r, 10) * 2 for r in range(40)]
    warm_up_then_flat[35] = 400.0  # one round ending at a validation peak
    assert second_half_growth(warm_up_then_flat) == 0.0
    climbing = [100.0 + r for r in range(40)]
    assert second_half_growth(climbing) == pytest.approx(137 / 122 - 1, abs=1e-4)  # medians of rounds 21-25, 36-40
    assert second_half_growth([100.0] * 10) is None

"""The environment of the FLARE processes the product starts."""

from fedbrats.runners.processes import MMAP_THRESHOLD_ENV, RELAY_MMAP_THRESHOLD, flare_env
from fedbrats.runtime.constants import MALLOC_TUNING_ENV


def test_flare_processes_get_a_fixed_mmap_threshold_unless_told_otherwise(monkeypatch):
    monkeypatch.delenv(MMAP_THRESHOLD_ENV, raising=False)
    monkeypatch.delenv(MALLOC_TUNING_ENV, raising=False)
    assert flare_env()[MMAP_THRESHOLD_ENV] == str(RELAY_MMAP_THRESHOLD) == "131072"
    monkeypatch.setenv(MMAP_THRESHOLD_ENV, "65536")
    assert flare_env()[MMAP_THRESHOLD_ENV] == "65536"
    monkeypatch.delenv(MMAP_THRESHOLD_ENV)
    monkeypatch.setenv(MALLOC_TUNING_ENV, "0")
    assert MMAP_THRESHOLD_ENV not in flare_env()

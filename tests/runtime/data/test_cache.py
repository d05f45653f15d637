"""The site's case cache: how many cases it keeps (cache_rate, or auto from the memory available) and what it costs."""

import logging

import pytest
import torch
from builders import write_site

from fedbrats.runtime.data import cache
from fedbrats.runtime.data.cache import CACHE_SHARE, CachedCases, CachePlan, available_memory
from fedbrats.runtime.data.compact import tensor_bytes
from fedbrats.runtime.data.datalist import resolve_datalist
from fedbrats.runtime.data.loaders import cache_summary, make_dataset, site_loader
from fedbrats.runtime.settings import TrainSettings, add_settings_arguments

MIB = 2**20


def made(entry):
    """A stand-in for a case's preprocessing: 1 MiB per case, counted."""
    made.calls += 1
    return {"case": entry["case"], "image": torch.full((MIB // 2,), entry["n"], dtype=torch.float16)}


made.calls = 0


def entries(n):
    return [{"case": f"Case_{k}", "n": k} for k in range(n)]


def test_cache_rate_defaults_to_auto_and_refuses_nonsense():
    assert TrainSettings().cache_rate == "auto"
    assert TrainSettings.from_dict({"cache_rate": "AUTO"}).cache_rate == "auto"
    assert TrainSettings.from_dict({"cache_rate": 0.25}).cache_rate == 0.25
    for bad in (1.5, -0.1, "all"):
        with pytest.raises(ValueError, match="cache_rate must be 'auto' or a number from 0 to 1"):
            TrainSettings.from_dict({"cache_rate": bad})
    import argparse

    parser = argparse.ArgumentParser()
    add_settings_arguments(parser)
    assert parser.parse_args(["--cache-rate", "auto"]).cache_rate == "auto"
    assert parser.parse_args(["--cache-rate", "0.5"]).cache_rate == 0.5


def test_available_memory_is_what_proc_meminfo_says_at_most():
    available = available_memory()
    with open("/proc/meminfo") as f:
        meminfo = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f}
    assert 0 < available <= meminfo["MemTotal"]


def test_auto_takes_a_share_of_the_available_memory():
    plan = CachePlan.from_rate("auto", 10, available=8 * 2**30)
    assert (plan.limit, plan.budget) == (10, int(8 * 2**30 * CACHE_SHARE))
    assert "cache_rate auto: up to 4.0 GiB, 50% of the 8.0 GiB of memory available" == plan.describe()
    fixed = CachePlan.from_rate(0.5, 9)
    assert (fixed.limit, fixed.budget) == (4, None) and fixed.describe() == "cache_rate 0.5: the first 4 of 9 cases"


def test_auto_with_unknown_memory_caches_every_case(monkeypatch):
    monkeypatch.setattr(cache, "available_memory", lambda: None)
    plan = CachePlan.from_rate("auto", 3)
    assert (plan.limit, plan.budget) == (3, None) and "memory unknown" in plan.describe()


def test_cases_are_cached_in_order_until_the_budget_is_spent():
    made.calls = 0
    plan = CachePlan.from_rate("auto", 6, available=int(2.5 * MIB / CACHE_SHARE))  # 2.5 MiB: 2 cases of 1 MiB
    cases = CachedCases(entries(6), made, plan, threads=1)
    assert [c["case"] for c in cases.cache] == ["Case_0", "Case_1"] and cases.cached_bytes == 2 * MIB
    assert made.calls == 3  # the third case was made, measured and not kept
    assert cases[1] is cases.cache[1]
    assert float(cases[4]["image"][0]) == 4 and cases[4] is not cases[4]  # made again on every use
    assert cases.summary().startswith("cached 2 of 6 cases in 0.00 GiB, 1.0 MiB a case (cache_rate auto: up to")


def test_a_fixed_rate_caches_the_first_cases_whatever_the_memory():
    cases = CachedCases(entries(4), made, CachePlan.from_rate(0.5, 4), threads=2)
    assert [c["case"] for c in cases.cache] == ["Case_0", "Case_1"] and len(cases) == 4


def test_a_site_logs_what_it_cached(tiny_site, tiny_settings, caplog):
    root, datalist = tiny_site
    with caplog.at_level(logging.INFO, logger="fedbrats.runtime.data.loaders"):
        loader = site_loader(datalist, root, "training", tiny_settings.replace(cache_rate="auto"), train=True)
    assert "cached 2 of 2 cases in" in caplog.text and "cache_rate auto: up to" in caplog.text
    assert cache_summary(loader.dataset).startswith("cached 2 of 2 cases")
    per_case = loader.dataset.data.cached_bytes / 2
    assert per_case == pytest.approx(tensor_bytes(loader.dataset.data.cache[0]))
    assert per_case < 32**3 * (4 * 2 + 3) + 1  # float16 image and uint8 label, at most the whole grid


def test_background_workers_deliver_float32_training_crops(tmp_path, tiny_settings):
    root = str(tmp_path)
    datalist = write_site(root, n_train=3)
    settings = tiny_settings.replace(crop=(24, 24, 16), num_workers=2, cache_rate=0.0)
    loader = site_loader(datalist, root, "training", settings, train=True)
    batches = list(loader)
    assert len(batches) == 3 and loader.num_workers == 2 and loader.persistent_workers
    for batch in batches:
        assert batch["image"].shape == (1, 4, 24, 24, 16) and batch["image"].dtype == torch.float32
        assert batch["label"].shape == (1, 3, 24, 24, 16) and batch["label"].dtype == torch.float32
    assert sorted(b["case"][0] for b in batches) == [e["case"] for e in resolve_datalist(datalist, "training", root)]
    assert cache_summary(make_dataset([], settings, train=False)).startswith("cached 0 of 0 cases")

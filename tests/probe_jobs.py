"""Tiny simulator runs of the demo job with the test-only components of ``fl_probes`` plugged into its configs."""

import json
import os
import shutil

from builders import TINY_TRAINING, write_site

from fedbrats.federation.build_job import build_job
from fedbrats.runners.simulate import run_simulator
from fedbrats.runtime.fl.site_data import write_site_settings

SITES = ["site-1", "site-2"]
PROBES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fl_probes.py")
RESULT_TASKS = ["train", "submit_model", "validate", "validate_global"]


def tiny_sites(tmp, sizes=((2, 1, 1), (2, 1, 1))):
    """Two sites, each with its own data root and its own cases: ``sizes`` (training, validation, testing) per site,
    each site's cases drawn with seeds of its own."""
    site_data = {}
    for k, (site, (n_train, n_val, n_test)) in enumerate(zip(SITES, sizes)):
        root = os.path.join(tmp, f"data-{site}")
        datalist = write_site(root, n_train, n_val, n_test, name=f"{site}.json", seed=100 * k)
        site_data[site] = {"data_root": root, "datalist": datalist}
    return site_data


def _edit(path, change):
    with open(path) as f:
        config = json.load(f)
    change(config)
    with open(path, "w") as f:
        json.dump(config, f, indent=2)


def probe_job(tmp, overrides, faults=None, record_to=None):
    """The demo job with tiny training; ``faults``: ``{site: {round: fault}}`` of ``FaultySiteExecutor``;
    ``record_to``: folder where each site's ``SiteRecorder`` writes every result it sends (after its own filters) and
    every task it receives."""
    job = build_job("brats_fedavg_demo", os.path.join(tmp, "jobs"), {"training": TINY_TRAINING, **overrides})
    config = os.path.join(job, "app", "config")
    shutil.copy(PROBES, os.path.join(job, "app", "custom", "fl_probes.py"))
    if faults:
        (site, rounds), *others = faults.items()
        assert not others, "one faulty site per job"

        def faulty(client):
            executor = client["executors"][0]["executor"]
            executor["path"] = "fl_probes.FaultySiteExecutor"
            executor["args"].update(faulty_site=site, faults={str(k): v for k, v in rounds.items()})

        _edit(os.path.join(config, "config_fed_client.json"), faulty)
    if record_to:
        out = os.path.abspath(record_to)
        sent = {"path": "fl_probes.SiteRecorder", "args": {"out_dir": out, "direction": "sent"}}
        received = {"path": "fl_probes.SiteRecorder", "args": {"out_dir": out, "direction": "received"}}

        def last_of_every_chain(chains, recorder):
            """FLARE takes one filter chain per task: the recorder goes last into a task's chain, or a chain of its
            own for the tasks that have none."""
            covered = set()
            for chain in chains:
                chain["filters"].append(recorder)
                covered |= set(chain["tasks"])
            rest = [t for t in RESULT_TASKS if t not in covered]
            if rest:
                chains.append({"tasks": rest, "filters": [recorder]})

        def recording(client):
            last_of_every_chain(client.setdefault("task_result_filters", []), sent)
            last_of_every_chain(client.setdefault("task_data_filters", []), received)

        _edit(os.path.join(config, "config_fed_client.json"), recording)
    return job


def run_probe_job(tmp, job, site_data):
    """Run ``job`` in the simulator (2 sites, 2 threads); returns the workspace."""
    settings = write_site_settings(os.path.join(tmp, "sites.json"), site_data)
    workspace = os.path.join(tmp, "sim")
    run_simulator(job, workspace, SITES, 2, settings, quiet=True)
    return workspace

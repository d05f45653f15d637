"""The members of FLARE that the product reaches past its public API (fedbrats.runtime.fl.flare_compat) are where the
product expects them in the installed FLARE, and do what it relies on."""

import json
import os

from nvflare.apis.signal import Signal
from nvflare.app_common.workflows.cross_site_model_eval import CrossSiteModelEval
from nvflare.job_config.api import FedJob

from fedbrats.runtime.fl.flare_compat import (
    abort_time,
    evaluation_sites,
    missing_members,
    serialize_always,
    set_evaluation_sites,
)
from fedbrats.runtime.fl.guarded_aggregator import GuardedAggregator


def test_the_installed_flare_has_every_member_the_product_relies_on():
    missing = missing_members()
    assert not missing, "FLARE changed what fedbrats.runtime.fl.flare_compat relies on: " + "; ".join(missing)


def test_abort_time_is_the_parents_when_the_signal_reports_its_parent():
    parent = Signal()
    child = Signal(parent)
    assert abort_time(child) is None
    parent.trigger(True)
    assert child.triggered and abort_time(child) == parent.trigger_time


def test_arguments_marked_serialize_always_reach_the_job_config_at_their_defaults(tmp_path):
    class Plain(GuardedAggregator):
        pass

    job = FedJob(name="compat")
    job.to_server(serialize_always()(Plain)(), id="plain")
    job.to_server(GuardedAggregator(), id="marked")  # min_clients 1 and aggregation_weights None: the defaults
    job.export_job(str(tmp_path))
    server = json.load(open(os.path.join(tmp_path, "compat", "app_server", "config", "config_fed_server.json")))
    args = {c["id"]: c["args"] for c in server["components"]}
    assert "min_clients" not in args["plain"]
    assert args["marked"]["min_clients"] == 1 and args["marked"]["aggregation_weights"] is None


def test_the_sites_of_a_cross_site_evaluation_are_read_and_replaced():
    evaluation = CrossSiteModelEval(participating_clients=["site-1", "site-2", "site-3"])
    assert evaluation_sites(evaluation) == ["site-1", "site-2", "site-3"]
    set_evaluation_sites(evaluation, ["site-1", "site-3"])
    assert evaluation_sites(evaluation) == ["site-1", "site-3"]

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO
from nvflare.apis.dxo import DXO, DataKind, from_shareable
from nvflare.apis.filter import ContentBlockedException
from nvflare.apis.fl_constant import FilterKey
from nvflare.apis.fl_context import FLContext
from nvflare.apis.workspace import Workspace
from nvflare.app_common.filters.dxo_blocker import DXOBlocker
from nvflare.app_common.filters.percentile_privacy import PercentilePrivacy
from nvflare.app_common.filters.svt_privacy import SVTPrivacy
from nvflare.private.fed.app.fl_conf import create_privacy_manager


def test_provisioning_project_makes_startup_kits(tmp_path):
    nvflare = os.path.join(os.path.dirname(sys.executable), "nvflare")
    done = subprocess.run(
        [nvflare, "provision", "-p", os.path.join(REPO, "deploy", "project.yml"), "-w", str(tmp_path)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        cwd=str(tmp_path),
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    kits = tmp_path / "fedbrats" / "prod_00"
    assert (kits / "fl-server.example.org" / "startup" / "start.sh").is_file()
    for site in ("site-1", "site-2"):
        assert (kits / site / "startup" / "start.sh").is_file()
        assert (kits / site / "startup" / "client.crt").is_file()
        assert (kits / site / "local").is_dir()
    assert (kits / "admin@coordinator.example.org" / "startup" / "fl_admin.sh").is_file()


def run_filters(filters, shareable):
    fl_ctx = FLContext()
    for f in filters:
        shareable = f.process(shareable, fl_ctx)
    return shareable


def test_site_privacy_policy_example_builds_flare_filters_that_let_only_filtered_differences_out(tmp_path):
    site = tmp_path / "site-1"
    (site / "startup").mkdir(parents=True)
    (site / "local").mkdir()
    shutil.copy(os.path.join(REPO, "deploy", "local", "privacy.json"), site / "local" / "privacy.json")
    policy = create_privacy_manager(Workspace(str(site), "site-1"), names_only=False)
    assert sorted(policy.name_to_scopes) == ["brats-percentile", "brats-svt"]
    assert policy.get_scope("").name == "brats-svt"  # a job that names no scope gets the default
    privacy = {"brats-svt": SVTPrivacy, "brats-percentile": PercentilePrivacy}
    weights = {"conv.weight": np.full((4, 3), 0.5, np.float32), "conv.bias": np.linspace(-1, 1, 4).astype(np.float32)}
    for name, scope in policy.name_to_scopes.items():
        filters = scope.task_result_filters[FilterKey.OUT]
        assert [type(f) for f in filters] == [DXOBlocker, privacy[name]]
        with pytest.raises(ContentBlockedException):
            run_filters(filters, DXO(DataKind.WEIGHTS, data=dict(weights)).to_shareable())
        diff = from_shareable(run_filters(filters, DXO(DataKind.WEIGHT_DIFF, data=dict(weights)).to_shareable()))
        assert diff.get_meta_prop("filter_history") == [privacy[name].__name__]
        assert {k: v.shape for k, v in diff.data.items()} == {k: v.shape for k, v in weights.items()}
        metrics = {"mean_dice": 0.5, "n_cases": 3}
        assert from_shareable(run_filters(filters, DXO(DataKind.METRICS, data=metrics).to_shareable())).data == metrics

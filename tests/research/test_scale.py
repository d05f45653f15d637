"""The scaling benchmark's echo sites drive the product's real server side through a real simulator run."""

import json
import subprocess
import sys

import pytest

from fedbrats.research.bench.scale import TINY, echo_run, linear_fit, model_bytes


def test_linear_fit_recovers_a_line():
    assert linear_fit([1, 2, 3, 4], [3, 5, 7, 9]) == pytest.approx((1.0, 2.0))


def test_serialised_update_is_about_the_model_size():
    # in a process of its own: FLARE's serialiser registered here would break the POC tests' admin logins later
    code = "import json; from fedbrats.research.bench.scale import TINY, serialisation; "
    code += "print(json.dumps(serialisation(TINY, repeats=1)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    row = json.loads(done.stdout.strip().splitlines()[-1])
    assert row["serialised_MiB"] == pytest.approx(model_bytes(TINY) / 2**20, rel=0.05)
    assert row["dumps_s"] > 0 and row["loads_s"] > 0


@pytest.mark.slow
def test_echo_sites_run_every_round_and_the_cross_site_report(tmp_path):
    row = echo_run(str(tmp_path), sites=2, rounds=2, training=TINY, threads=2)
    assert row["rounds"] == 2 and row["round_s"] > 0
    assert row["report_models"] == 4  # final and best global models, 2 local models
    assert row["server_peak_rss_MiB"] > 50 and row["site_worker_peak_rss_MiB"] > 50  # both kinds of process sampled
    assert row["sent_per_round_MiB"] == pytest.approx(4 * row["model_MiB"], abs=0.2)

"""The federation of ``deploy/project.yml`` as hospitals run it: server, sites and admin on hosts of their own (a
network namespace each, own address on a bridge), the server reached by its host name, which only the hosts' own
hosts files know; each participant started from its startup kit; the demo job submitted from the admin's host with
``--env prod`` finishes with the cross-site report; a site kit of another provisioning is refused."""

import glob
import os
import re
import time

import pytest
from builders import TINY_FLAGS, write_site
from conftest import REPO

from fedbrats.evaluation.report import write_report
from fedbrats.federation.catalog import DEMO_JOB
from fedbrats.runners.processes import marked_processes
from fedbrats.runners.separate_hosts import (
    NETNS_ETC,
    PROCESS_MARK,
    SERVER_NAME,
    SeparateHosts,
    provision,
    unavailable,
)

pytestmark = pytest.mark.slow

SITES = ("site-1", "site-2")
PROJECT = os.path.join(REPO, "deploy", "project.yml")


def read(path):
    return open(path, errors="replace").read() if os.path.exists(path) else ""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One run, already torn down: the hosts' addresses, the kits and logs, the admin's output, the times."""
    reason = unavailable()
    if reason:
        pytest.skip(f"no network namespaces here: {reason}")
    tmp = str(tmp_path_factory.mktemp("hosts"))
    prefix = f"fbt{os.getpid()}"
    hosts = SeparateHosts(os.path.join(tmp, "federation"), prefix=prefix)
    times, started = {}, time.time()
    try:
        site_data = {}
        for i, site in enumerate(SITES):
            root = os.path.join(tmp, "data", site)
            site_data[site] = {"data_root": root, "datalist": write_site(root, name=f"{site}.json", seed=10 * i)}
        hosts.prepare(PROJECT, site_data)
        hosts.start_server()
        preflight = hosts.preflight("site-1")  # as a site's IT checks its kit before starting the site
        hosts.start_sites()
        times["up"] = time.time() - started
        foreign = os.path.join(provision(PROJECT, os.path.join(tmp, "other")), "site-1")  # same names, another CA
        hosts.add_host("foreign")
        hosts.start("foreign", foreign)
        submitted = time.time()
        admin = hosts.submit(DEMO_JOB, ["--rounds", "2", *TINY_FLAGS, "--timeout", "600"])
        times["job"] = time.time() - submitted
        found = {
            "addresses": dict(hosts.network.addresses),
            "kits": hosts.kits,
            "foreign": foreign,
            "preflight": preflight,
            "admin": admin,
            "tmp": tmp,
            "root": hosts.root,
        }
    finally:
        stopping = time.time()
        hosts.down()
        times["down"], times["all"] = time.time() - stopping, time.time() - started
        print("separate hosts: " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()))
    found["left"] = {
        "processes": marked_processes(PROCESS_MARK, hosts.root),
        "namespaces": hosts.network.namespaces(),
        "hosts files": glob.glob(os.path.join(NETNS_ETC, f"{prefix}-*")),
    }
    return found


def test_the_demo_job_submitted_from_the_admins_host_ends_with_the_cross_site_report(run):
    output = run["admin"].stdout + run["admin"].stderr
    assert run["admin"].returncode == 0, output[-3000:]
    result = re.search(r"^result: (.+)$", output, re.M).group(1)
    report = write_report(result, os.path.join(run["tmp"], "report"))
    assert report["sites"] == list(SITES) and report["ended"] == "The run ended after its 2 rounds."
    final = next(m for m in report["models"] if m["model"] == "SRV_FL_global_model.pt")
    assert sorted(final["sites"]) == list(SITES)
    job_id = re.search(r"^job id: (\S+)$", output, re.M).group(1)
    assert os.path.isdir(os.path.join(run["root"], "server-storage", "jobs-storage", job_id))  # not /tmp/nvflare
    assert not os.path.exists(os.path.join("/tmp", "nvflare", "jobs-storage", job_id))


def test_each_participant_is_a_host_of_its_own_that_reaches_the_server_by_name(run):
    addresses = run["addresses"]
    assert len(set(addresses.values())) == len(addresses) == len(SITES) + 3  # server, sites, admin, foreign site
    server = addresses["server"]
    for site in SITES:
        log = read(os.path.join(run["kits"], site, "log.txt"))
        log = log[log.rindex("created backbone external connector") :]  # the site's own start, after its preflight
        assert f"Successfully registered client:{site}" in log
        assert f"Connected to server: http://{SERVER_NAME}:8002" in log
        assert f"verified server identity '{SERVER_NAME}'" in log
        assert f"{addresses[site]}:" in log and f"=> {server}:8002 SSL {SERVER_NAME}]" in log
    server_log = read(os.path.join(run["kits"], SERVER_NAME, "log.txt"))
    for host in (*SITES, "admin"):
        assert f"<= {addresses[host]}:" in server_log
    assert SERVER_NAME not in read("/etc/hosts")  # known only inside the hosts' own hosts files


def test_the_sites_kit_passes_preflight_check_from_its_host(run):
    done = run["preflight"]
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"\| Check server available\s+\| PASSED", done.stdout) and "overall: pass" in done.stdout


def test_a_site_kit_of_another_provisioning_is_refused(run):
    log = read(os.path.join(run["foreign"], "log.txt"))
    assert "SSLCertVerificationError" in log and "certificate verify failed" in log
    assert "Successfully registered client" not in log
    server_log = read(os.path.join(run["kits"], SERVER_NAME, "log.txt"))
    assert f"<= {run['addresses']['foreign']}:" not in server_log  # no connection of the foreign site got through


def test_the_admin_shuts_the_federation_down_from_its_host(run):
    assert "FL server shutdown." in read(os.path.join(run["kits"], SERVER_NAME, "log.txt"))
    for site in SITES:
        assert "Client shutdown..." in read(os.path.join(run["kits"], site, "log.txt"))


def test_nothing_is_left_behind(run):
    assert run["left"] == {"processes": [], "namespaces": [], "hosts files": []}

"""Only the members of a provisioned project get in: a server started from the startup kits of ``deploy/project.yml``
refuses a site whose kit comes from another provisioning (another root CA) and a site name the project does not
know, and refuses a job from an admin whose role may not submit one (FLARE's default authorization policy)."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
import yaml
from builders import TINY_TRAINING
from conftest import REPO
from nvflare.fuel.flare_api.api_spec import AuthorizationError
from nvflare.fuel.flare_api.flare_api import new_secure_session

from fedbrats.federation.build_job import build_job
from fedbrats.runners.poc import listening_ports
from fedbrats.runners.processes import flare_env

pytestmark = pytest.mark.slow


SERVER = "localhost"
"""The server's name is the host name the sites reach it by: this machine in the test."""
PROJECT_ADMIN = "admin@coordinator.example.org"
OTHER_ADMINS = {
    "member@hospital-a.example.org": ("hospital_a", "member"),
    "it@hospital-b.example.org": ("hospital_b", "org_admin"),
}
JOB_VALUES = {"sites": ["site-2"], "min_clients": 1, "num_rounds": 1, "training": TINY_TRAINING}
JOIN_WAIT = 25
"""Seconds a refused site is given to join: a member joins in a few."""


def free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def project_file(tmp, port):
    """``deploy/project.yml`` with this machine as the server (on ``port``: another FLARE system may hold 8002) and
    one admin of each role that may not submit a job."""
    with open(os.path.join(REPO, "deploy", "project.yml")) as f:
        project = yaml.safe_load(f)
    for participant in project["participants"]:
        if participant["type"] == "server":
            participant.update(name=SERVER, fed_learn_port=port)
    for name, (org, role) in OTHER_ADMINS.items():
        project["participants"].append({"name": name, "type": "admin", "org": org, "role": role})
    path = os.path.join(tmp, "project.yml")
    with open(path, "w") as f:
        yaml.safe_dump(project, f)
    return path


def provision(project, out):
    nvflare = os.path.join(os.path.dirname(sys.executable), "nvflare")
    done = subprocess.run(
        [nvflare, "provision", "-p", project, "-w", out], capture_output=True, text=True, cwd=out, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return os.path.join(out, "fedbrats", "prod_00")


class Participant:
    """A server or site started from its startup kit as its ``start.sh`` starts it, in a process group of its own."""

    def __init__(self, kit, name, org, server=False):
        self.kit, self.name = kit, name
        program = "server.server_train" if server else "client.client_train"
        config = "fed_server.json" if server else "fed_client.json"
        args = ["secure_train=true", f"org={org}", "config_folder=config"] + ([] if server else [f"uid={name}"])
        self.log = open(os.path.join(kit, "console.txt"), "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-u", "-m", f"nvflare.private.fed.app.{program}", "-m", kit, "-s", config, "--set", *args],
            cwd=kit,
            env=flare_env(),
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self):
        self.log.flush()
        return "".join(
            open(os.path.join(self.kit, f)).read()
            for f in ("console.txt", "log.txt")
            if os.path.exists(os.path.join(self.kit, f))
        )

    def stop(self):
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
                self.proc.wait(timeout=10)
                return
            except ProcessLookupError:
                return
            except subprocess.TimeoutExpired:
                continue


def connected_sites(admin_kit):
    session = new_secure_session(os.path.basename(admin_kit), admin_kit, timeout=10)
    try:
        return {c.name for c in session.get_system_info().client_info}
    finally:
        session.close()


def wait_for(condition, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(1)
    return False


@pytest.fixture(scope="module")
def federation(tmp_path_factory):
    tmp, port = str(tmp_path_factory.mktemp("membership")), free_port()
    project = project_file(tmp, port)
    for folder in ("ours", "other"):
        os.makedirs(os.path.join(tmp, folder))
    ours = provision(project, os.path.join(tmp, "ours"))
    other = provision(project, os.path.join(tmp, "other"))  # same names, another root CA
    impostor = os.path.join(tmp, "site-9")
    shutil.copytree(os.path.join(ours, "site-2"), impostor)  # a member's kit, used under a name the project lacks
    started, sites = time.time(), {}
    server = Participant(os.path.join(ours, SERVER), SERVER, "coordinator", server=True)
    try:
        assert wait_for(lambda: port in listening_ports(), 60), server.output()[-3000:]
        sites["member"] = Participant(os.path.join(ours, "site-2"), "site-2", "hospital_b")
        sites["other CA"] = Participant(os.path.join(other, "site-1"), "site-1", "hospital_a")
        sites["unknown name"] = Participant(impostor, "site-9", "hospital_b")
        admin = os.path.join(ours, PROJECT_ADMIN)
        assert wait_for(lambda: "site-2" in connected_sites(admin), 60), sites["member"].output()[-3000:]
        time.sleep(JOIN_WAIT)
        yield {
            "ours": ours,
            "server": server,
            "sites": sites,
            "connected": connected_sites(admin),
            "job": build_job("brats_fedavg_demo", os.path.join(tmp, "jobs"), JOB_VALUES),
            "started": started,
        }
    finally:
        for participant in [*sites.values(), server]:
            participant.stop()
        print(f"membership checks took {time.time() - started:.0f} s")


def registered(participant):
    """Whether a site got its token from the server: without one it gets no task."""
    return f"Successfully registered client:{participant.name}" in participant.output()


def test_a_member_site_joins(federation):
    assert "site-2" in federation["connected"] and registered(federation["sites"]["member"])


def test_a_site_from_another_provisioning_cannot_join(federation):
    site = federation["sites"]["other CA"]
    assert "site-1" not in federation["connected"] and not registered(site)
    assert "SSLCertVerificationError" in site.output()  # the server's certificate is not signed by its root CA
    assert "New client site-1" not in federation["server"].output()


def test_an_unknown_site_name_cannot_join(federation):
    site = federation["sites"]["unknown name"]
    assert "site-9" not in federation["connected"] and not registered(site)
    assert "authenticated as 'site-2' but claimed endpoint 'site-9'" in federation["server"].output()


def test_the_project_admin_submits_a_job(federation):
    kit = os.path.join(federation["ours"], PROJECT_ADMIN)
    session = new_secure_session(PROJECT_ADMIN, kit, timeout=10)
    try:
        job_id = session.submit_job(federation["job"])
        assert job_id
        session.abort_job(job_id)
    finally:
        session.close()


@pytest.mark.parametrize("admin", sorted(OTHER_ADMINS))
def test_an_admin_whose_role_may_not_submit_cannot_submit_a_job(federation, admin):
    kit = os.path.join(federation["ours"], admin)
    session = new_secure_session(admin, kit, timeout=10)
    try:
        with pytest.raises(AuthorizationError, match=f"'{admin}' is not authorized for 'submit_job'"):
            session.submit_job(federation["job"])
    finally:
        session.close()

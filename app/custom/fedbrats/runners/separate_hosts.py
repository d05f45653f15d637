"""A provisioned FLARE project whose participants run as separate hosts on one machine.

Each participant gets a Linux network namespace of its own (``<prefix>-<host>``) with its own address on a bridge,
which lives in one more namespace (``<prefix>-net``): the machine's own network is left as it is. The server's host
name resolves only inside these namespaces, through a hosts file of each (``/etc/netns/<namespace>/hosts``, which
``ip netns exec`` mounts over ``/etc/hosts``). Every participant is started from its startup kit
(``startup/start.sh``) inside its namespace, as a hospital's IT starts it. Needs root and iproute2's ``ip``.

    python -m fedbrats.runners.separate_hosts up --root workspace/hosts        # provision, network, start
    python -m fedbrats.runners.separate_hosts submit --root workspace/hosts --rounds 2
    python -m fedbrats.runners.separate_hosts down --root workspace/hosts      # stop, remove the network
"""

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence

import yaml

from fedbrats.federation.catalog import DEMO_JOB, JOB_SCRIPT, job_definition
from fedbrats.package_data import JOBS_DIR
from fedbrats.runners.poc import make_site_data
from fedbrats.runners.processes import flare_env, marked_processes, nvflare_command, stop_marked
from fedbrats.runtime.data.datalist import write_json
from fedbrats.runtime.fl.site_data import SITE_SETTINGS_FILE

SERVER_NAME = "fl-server.hospital.test"
"""The server's host name: ``.test`` is reserved, so it resolves nowhere but in the namespaces' hosts files."""
PREFIX = "fedbrats"
SUBNET = "10.211.0"
"""The bridge's /24: reachable only from the namespaces on it, so it clashes with no network of the machine."""
NETNS_ETC = "/etc/netns"
PROCESS_MARK = "FEDBRATS_HOSTS_ROOT"
"""Environment variable every process started here inherits, holding the root folder: how ``down`` finds them."""
SERVER_STARTED = "Server started"
"""The server's log line once it listens."""
SHUTDOWN_WAIT = 30.0
"""Seconds the server and the sites are given to end after the admin's shutdown."""
PROG_ENV = "FEDBRATS_HOSTS_PROG"
"""The command that runs this module, as its messages name it (deploy/hosts_demo.sh sets it)."""
REGISTERED = "Successfully registered client:{site}"
"""A site's log line once the server has accepted it."""


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")
    return done


def unavailable() -> str:
    """Why network namespaces cannot be made here ('' when they can)."""
    if shutil.which("ip") is None:
        return "iproute2's ip command is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add)"
    probe = f"{PREFIX}-probe-{os.getpid()}"
    done = ip("netns", "add", probe, check=False)
    if done.returncode != 0:
        return f"ip netns add failed: {done.stderr.strip()}"
    ip("netns", "del", probe, check=False)
    return ""


class HostNetwork:
    """Namespaces ``<prefix>-<host>`` on one bridge, each with an address of ``subnet`` and a hosts file."""

    def __init__(self, prefix: str = PREFIX, subnet: str = SUBNET):
        self.prefix, self.subnet = prefix, subnet
        self.addresses: Dict[str, str] = {}

    def namespace(self, host: str) -> str:
        return f"{self.prefix}-{host}"

    def namespaces(self) -> List[str]:
        """This network's namespaces that exist now (also those of an earlier run with the same prefix)."""
        names = [line.split()[0] for line in ip("netns", "list").stdout.splitlines() if line.strip()]
        return [n for n in names if n.startswith(f"{self.prefix}-")]

    def add(self, host: str, names: Dict[str, str]) -> str:
        """A namespace for ``host`` on the bridge; ``names``: host name -> address, its hosts file. Its address."""
        bridge = self.namespace("net")
        if not self.addresses:
            ip("netns", "add", bridge)
            ip("-n", bridge, "link", "add", "br0", "type", "bridge")
            ip("-n", bridge, "link", "set", "br0", "up")
        ns, index = self.namespace(host), len(self.addresses) + 2
        address = self.addresses[host] = f"{self.subnet}.{index}"
        ip("netns", "add", ns)
        ip("link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", f"v{index}", "netns", bridge)
        ip("-n", bridge, "link", "set", f"v{index}", "master", "br0", "up")
        ip("-n", ns, "link", "set", "lo", "up")
        ip("-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
        ip("-n", ns, "link", "set", "eth0", "up")
        os.makedirs(os.path.join(NETNS_ETC, ns), exist_ok=True)
        with open(os.path.join(NETNS_ETC, ns, "hosts"), "w") as f:
            f.write("127.0.0.1 localhost\n::1 localhost ip6-localhost\n")
            f.writelines(f"{a} {name}\n" for name, a in {**names, host: address}.items())
        return address

    def command(self, host: str, argv: Sequence[str]) -> List[str]:
        return ["ip", "netns", "exec", self.namespace(host), *argv]

    def pids(self, host: str) -> List[int]:
        """The processes running in ``host``'s namespace."""
        done = ip("netns", "pids", self.namespace(host), check=False)
        return [int(p) for p in done.stdout.split()] if done.returncode == 0 else []

    def delete(self) -> None:
        """Remove every namespace of this prefix (their links and the bridge go with them) and their hosts files."""
        for ns in self.namespaces():
            ip("netns", "del", ns, check=False)
        for folder in glob.glob(os.path.join(NETNS_ETC, f"{self.prefix}-*")):
            shutil.rmtree(folder, ignore_errors=True)
        self.addresses = {}


def provision(project: str, out: str, server_name: str = SERVER_NAME) -> str:
    """Provision ``project`` with its server renamed ``server_name`` into ``out``; returns the kits' folder."""
    with open(project) as f:
        config = yaml.safe_load(f)
    for participant in config["participants"]:
        if participant["type"] == "server":
            participant["name"] = server_name
    os.makedirs(out, exist_ok=True)
    adapted = os.path.join(out, "project.yml")
    with open(adapted, "w") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    cmd = [nvflare_command(), "provision", "-p", adapted, "-w", out]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=out, stdin=subprocess.DEVNULL, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"nvflare provision failed: {(done.stdout + done.stderr)[-2000:]}")
    return os.path.join(out, config["name"], "prod_00")


def keep_server_storage(server_kit: str, folder: str) -> str:
    """Write the server kit's ``local/resources.json`` (from FLARE's ``.default``) with its job store and snapshot
    storage under ``folder`` instead of FLARE's ``/tmp/nvflare``; returns the file."""
    local = os.path.join(server_kit, "local")
    with open(os.path.join(local, "resources.json.default")) as f:
        resources = json.load(f)
    resources["snapshot_persistor"]["args"]["storage"]["args"]["root_dir"] = os.path.join(folder, "snapshot-storage")
    for component in resources["components"]:
        if component["id"] == "job_manager":
            component["args"]["uri_root"] = os.path.join(folder, "jobs-storage")
    path = os.path.join(local, "resources.json")
    write_json(path, resources)
    return path


def participants(kits: str) -> Dict[str, List[str]]:
    """The kits of a provisioned project by type: ``server``, ``client`` and ``admin`` names."""
    with open(os.path.join(os.path.dirname(os.path.dirname(kits)), "project.yml")) as f:
        config = yaml.safe_load(f)
    found: Dict[str, List[str]] = {"server": [], "client": [], "admin": []}
    for participant in config["participants"]:
        found[participant["type"]].append(participant["name"])
    return found


class SeparateHosts:
    """The participants of one provisioned project under ``root``, each on a host of its own (namespace)."""

    def __init__(self, root: str, prefix: str = PREFIX, server_name: str = SERVER_NAME):
        self.root = os.path.abspath(root)
        self.server_name = server_name
        self.network = HostNetwork(prefix)
        self.env = flare_env({PROCESS_MARK: self.root})

    def add_host(self, host: str) -> str:
        """A namespace for ``host`` that knows the server's name; its address. The server's namespace comes first."""
        server = self.network.addresses.get("server") or f"{self.network.subnet}.2"
        return self.network.add(host, {self.server_name: server})

    def start(self, host: str, kit: str) -> int:
        """``startup/start.sh`` of ``kit`` inside ``host``'s namespace; its output goes to ``<kit>/console.txt``.
        Returns the length its ``log.txt`` had before: what this start logs comes after it."""
        log_file = os.path.join(kit, "log.txt")
        offset = os.path.getsize(log_file) if os.path.exists(log_file) else 0
        with open(os.path.join(kit, "console.txt"), "a") as log:
            subprocess.run(
                self.network.command(host, [os.path.join(kit, "startup", "start.sh")]),
                cwd=kit,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                check=True,
                timeout=60,
            )
        return offset

    def up(self, project: str, site_data: Optional[Dict[str, Dict[str, str]]] = None, cases: int = 0) -> None:
        """:meth:`prepare`, start the server, check each site's kit from its host (``nvflare preflight-check``), start
        the sites and wait until every site has registered."""
        self.prepare(project, site_data, cases)
        self.start_server()
        for site in participants(self.kits)["client"]:
            done = self.preflight(site)
            if done.returncode != 0:
                raise RuntimeError(f"nvflare preflight-check of {site} failed:\n{done.stdout}{done.stderr}")
        self.start_sites()

    def prepare(self, project: str, site_data: Optional[Dict[str, Dict[str, str]]] = None, cases: int = 0) -> None:
        """Provision ``project`` (its server renamed), the server's job store under the root, one host per
        participant and each site's data setting (default: synthetic sites); whatever an earlier run with this root
        and prefix left is stopped first."""
        self.down(quiet=True)
        shutil.rmtree(os.path.join(self.root, "kits"), ignore_errors=True)
        provision(project, os.path.join(self.root, "kits"), self.server_name)
        sites = participants(self.kits)["client"]
        keep_server_storage(self.kit("server"), os.path.join(self.root, "server-storage"))
        for host in ["server", *sites, "admin"]:
            print(f"[hosts] {self.network.namespace(host)}: {self.add_host(host)}", flush=True)
        cases = cases or job_definition(DEMO_JOB).synthetic_cases
        site_data = site_data or make_site_data(os.path.join(self.root, "data"), sites, cases)
        for site, data in site_data.items():
            path = os.path.join(self.kits, site, "local", SITE_SETTINGS_FILE)
            write_json(path, {"data_root": os.path.abspath(data["data_root"]), "datalist": data["datalist"]})

    @property
    def kits(self) -> str:
        """The folder of the startup kits provisioned under the root."""
        found = glob.glob(os.path.join(self.root, "kits", "*", "prod_00"))
        if not found:
            raise FileNotFoundError(f"no provisioned kits under {self.root}/kits: run up first")
        return found[0]

    def kit(self, host: str) -> str:
        """The startup kit of a host: ``server``, ``admin`` or a site."""
        names = participants(self.kits)
        return os.path.join(self.kits, names[host][0] if host in ("server", "admin") else host)

    def start_server(self, timeout: float = 60) -> None:
        offset = self.start("server", self.kit("server"))
        self.wait_for_log(self.kit("server"), SERVER_STARTED, timeout, offset)
        print(f"[hosts] server {self.server_name} started", flush=True)

    def preflight(self, host: str) -> subprocess.CompletedProcess:
        """``nvflare preflight-check`` of ``host``'s kit, run on that host; output echoed and returned. For a site it
        checks that the server answers and starts the site for a few seconds (a dry run), so run it before the site
        is started."""
        argv = [nvflare_command(), "preflight-check", "-p", self.kit(host)]
        done = subprocess.run(
            self.network.command(host, argv), env=self.env, stdin=subprocess.DEVNULL, capture_output=True, text=True
        )
        print(f"[hosts] {host}: nvflare preflight-check -p {self.kit(host)}\n{done.stdout}{done.stderr}", flush=True)
        return done

    def start_sites(self, timeout: float = 120) -> None:
        """Start every site and wait until each has registered with the server."""
        sites = participants(self.kits)["client"]
        offsets = {site: self.start(site, self.kit(site)) for site in sites}
        for site in sites:
            self.wait_for_log(self.kit(site), REGISTERED.format(site=site), timeout, offsets[site])
            print(f"[hosts] {site} registered with {self.server_name}", flush=True)

    @staticmethod
    def wait_for_log(kit: str, text: str, timeout: float, offset: int = 0) -> None:
        """Wait for ``text`` in the kit's ``log.txt`` after its first ``offset`` bytes."""
        deadline, path = time.time() + timeout, os.path.join(kit, "log.txt")
        while time.time() < deadline:
            if os.path.exists(path):
                with open(path, "rb") as f:
                    f.seek(offset)
                    if text.encode() in f.read():
                        return
            time.sleep(1)
        raise RuntimeError(f"no '{text}' in {path} after {timeout:.0f} s")

    def submit(self, job: str = DEMO_JOB, args: Sequence[str] = ()) -> subprocess.CompletedProcess:
        """Run ``jobs/<job>/job.py --env prod`` with the admin's kit inside the admin's namespace: it submits the
        job, waits, downloads the result and prints the report. Output echoed and returned."""
        script = os.path.join(JOBS_DIR, job, JOB_SCRIPT)
        argv = [sys.executable, script, "--env", "prod", "--startup-kit", self.kit("admin"), *args]
        done = subprocess.run(
            self.network.command("admin", argv),
            cwd=self.root,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
        )
        print(done.stdout + done.stderr, flush=True)
        return done

    def down(self, quiet: bool = False) -> None:
        """Stop every process started here, then remove the namespaces and their hosts files. The server and the
        sites are first asked to shut down from the admin's host (``nvflare system shutdown all``), as an admin stops
        a federation; what is still running after that (a site that never joined) is killed."""
        if marked_processes(PROCESS_MARK, self.root):
            if not quiet:
                print(f"[hosts] stopping the participants started in {self.root}", flush=True)
            namespaces = self.network.namespaces()
            admin, server = self.network.namespace("admin"), self.network.namespace("server")
            if admin in namespaces and server in namespaces and self.network.pids("server"):
                self.shutdown()
        stop_marked(PROCESS_MARK, self.root, grace=10.0)
        self.network.delete()

    def shutdown(self, timeout: float = SHUTDOWN_WAIT) -> Optional[subprocess.CompletedProcess]:
        """``nvflare system shutdown all`` from the admin's host; waits up to ``timeout`` s for the server's and the
        sites' hosts to hold no process."""
        argv = [nvflare_command(), "system", "shutdown", "all", "--force", "--no-wait", "--startup-kit"]
        try:
            done = subprocess.run(
                self.network.command("admin", [*argv, self.kit("admin")]),
                env=self.env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=120,
            )
        except subprocess.TimeoutExpired:
            print("[hosts] admin: no answer to the shutdown in 120 s", flush=True)
            return None
        print(f"[hosts] admin: {' '.join(argv[1:])} KIT\n{done.stdout}{done.stderr}".rstrip(), flush=True)
        hosts, deadline = ["server", *participants(self.kits)["client"]], time.time() + timeout
        while any(self.network.pids(h) for h in hosts) and time.time() < deadline:
            time.sleep(1)
        return done


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("up", "submit", "down"))
    parser.add_argument("--root", default="workspace/hosts", help="kits, data and logs")
    parser.add_argument("--prefix", default=PREFIX, help="namespaces are named <prefix>-<host>")
    parser.add_argument("--project", default="deploy/project.yml", help="up: the project file to provision")
    parser.add_argument("--server-name", default=SERVER_NAME, help="up: the server's host name")
    parser.add_argument("--cases", type=int, default=0, help="up: synthetic cases per site (default: the demo's)")
    parser.add_argument("--job", default=DEMO_JOB, help="submit: the job (jobs/<job>/job.py)")
    args, job_args = parser.parse_known_args(argv)
    if args.action != "submit" and job_args:
        parser.error(f"unrecognized arguments: {' '.join(job_args)}")
    reason = unavailable()
    if reason:
        raise SystemExit(f"separate hosts: {reason}")
    hosts = SeparateHosts(args.root, args.prefix, args.server_name)
    if args.action == "down":
        hosts.down()
        print(f"[hosts] stopped; namespaces {args.prefix}-* and {NETNS_ETC}/{args.prefix}-* removed", flush=True)
        return 0
    if args.action == "submit":
        return hosts.submit(args.job, job_args).returncode
    try:
        hosts.up(args.project, cases=args.cases)
    except BaseException:
        hosts.down()
        raise
    prog, root = os.environ.get(PROG_ENV, "python -m fedbrats.runners.separate_hosts"), args.root
    print(
        f"[hosts] running; each participant's log: {hosts.kits}/<participant>/log.txt\n"
        f"[hosts] submit the demo job from the admin's host: {prog} submit --root {root} --rounds 2\n"
        f"[hosts]   which runs: ip netns exec {hosts.network.namespace('admin')} {sys.executable} "
        f"{os.path.join(JOBS_DIR, args.job, JOB_SCRIPT)} --env prod --startup-kit {hosts.kit('admin')} --rounds 2\n"
        f"[hosts] stop everything: {prog} down --root {root}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

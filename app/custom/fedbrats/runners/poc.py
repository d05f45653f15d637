"""POC round trip: server and sites as separate FLARE processes on this machine, a submitted job, the report.

Everything lives under one POC folder with its own HOME, so the user's ``~/.nvflare`` is untouched;
every process started is stopped again, also on failure or Ctrl-C.
"""

import argparse
import glob
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence, Union

from fedbrats.evaluation.outcome import UNFINISHED, failure_text, job_failure, read_logs, server_failure
from fedbrats.evaluation.report import write_report
from fedbrats.federation.catalog import DEMO_JOB, EVAL_JOB, job_definition, job_names, job_recipe
from fedbrats.federation.envs import RunningPocEnv
from fedbrats.federation.recipe import BratsFedAvgRecipe
from fedbrats.prepare.site_specs import FORMS, REFERENCE_SITES, SiteSpec, parse_sites
from fedbrats.prepare.synthetic import ensure_synthetic_sites
from fedbrats.runners.processes import flare_env, marked_processes, nvflare_command, stop_marked
from fedbrats.runners.progress import LogFollower
from fedbrats.runtime.data.datalist import write_json
from fedbrats.runtime.fl.site_data import SITE_SETTINGS_FILE

FL_PORT = 8002
"""Port of a POC system's server (FL and admin traffic), FLARE's default."""

WAIT_AFTER_MIN = 60
"""Seconds a round of ``fedbrats poc --min-clients N`` waits for the other sites once N have answered (when the job
sets no wait): the results of sites that are merely slower still count."""

HEART_BEAT_TIMEOUT = 30.0
"""Seconds without a heartbeat after which the server drops a site (FLARE: 600). Sites send one every 10 s from
their parent process, whatever their training does; a dropped site that answers again is taken back. A site that
went away entirely (its machine rebooted) stops holding up the job's tasks this long plus the job's
``dead_client_grace_period`` after its last heartbeat (docs/deployment.md, "When a site fails")."""


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def listening_ports() -> set:
    """TCP ports something listens on, on this machine."""
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if os.path.exists(table):
            for line in open(table).readlines()[1:]:
                fields = line.split()
                if fields[3] == "0A":  # LISTEN
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


PROCESS_MARK = "FEDBRATS_POC_ROOT"
"""Environment variable every process a :class:`PocSystem` starts inherits, holding its root: how it finds them."""


class PocSystem:
    """A POC deployment under ``root``: prepare, start, submit, wait, download, stop.

    ``port``: the server's port (FL and admin traffic), FLARE's 8002 by default; None: a free one, so that it runs
    beside another POC system. ``heart_beat_timeout``: seconds without a heartbeat after which the server drops a
    site, written into the server's ``local/resources.json``; None keeps FLARE's 600.
    """

    def __init__(
        self,
        root: str,
        sites: List[str],
        port: Optional[int] = FL_PORT,
        heart_beat_timeout: Optional[float] = HEART_BEAT_TIMEOUT,
    ):
        self.root = os.path.abspath(root)
        self.sites = sites
        self.port = free_port() if port is None else port
        self.heart_beat_timeout = heart_beat_timeout
        self.env = flare_env(
            {
                "HOME": os.path.join(self.root, "home"),
                "NVFLARE_POC_WORKSPACE": os.path.join(self.root, "poc"),
                PROCESS_MARK: self.root,
            }
        )
        self.started = False

    def nvflare(self, *args: str, timeout: float = 300, check: bool = True) -> str:
        cmd = [nvflare_command(), *args]
        done = subprocess.run(
            cmd, env=self.env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout
        )
        if check and done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(cmd)} failed ({done.returncode}): {(done.stdout + done.stderr).strip()[-2000:]}"
            )
        return done.stdout + done.stderr

    def participant_dir(self, name: str) -> str:
        found = glob.glob(os.path.join(self.root, "poc", "*", "prod_*", name))
        if not found:
            raise FileNotFoundError(f"no POC folder of {name} under {self.root}/poc")
        return found[0]

    def prepare(self) -> None:
        """A fresh POC system in this folder; one left running here by an earlier round trip is stopped first.

        Refuses when another FLARE system (e.g. the user's own POC) holds the port: it is never stopped.
        """
        os.makedirs(self.env["HOME"], exist_ok=True)
        if self.our_processes():
            print(f"[poc]     stopping the POC system left running in {self.root}", flush=True)
            self.stop()
        if self.port in listening_ports():
            raise RuntimeError(
                f"port {self.port} is in use by another FLARE system on this machine, which fedbrats poc does not "
                "stop: submit to a running POC system with 'python jobs/<job>/job.py --env poc', or stop it first"
            )
        self.nvflare("poc", "prepare", "-c", *self.sites, "--force")
        if self.port != FL_PORT:  # the same project on another port, provisioned again from FLARE's project file
            project = os.path.join(self.root, "project.yml")
            with open(os.path.join(self.root, "poc", "project.yml")) as f:
                text = f.read()
            with open(project, "w") as f:
                f.write(text.replace(f"fed_learn_port: {FL_PORT}", f"fed_learn_port: {self.port}"))
            self.nvflare("poc", "prepare", "-i", project, "--force")
        if self.heart_beat_timeout is not None:
            resources = os.path.join(self.participant_dir("server"), "local", "resources.json")
            with open(resources) as f:
                config = json.load(f)
            for server in config["servers"]:
                server["heart_beat_timeout"] = self.heart_beat_timeout
            write_json(resources, config)

    def set_site_data(self, site: str, data_root: str, datalist: str) -> str:
        """Write the site-local data setting into ``<site>/local``: the job itself holds no data path."""
        path = os.path.join(self.participant_dir(site), "local", SITE_SETTINGS_FILE)
        write_json(path, {"data_root": os.path.abspath(data_root), "datalist": os.path.abspath(datalist)})
        return path

    def start(self, gpu: Optional[List[str]] = None) -> None:
        self.started = True
        args = ["poc", "start", "--timeout", "120", "-ex", "admin@nvidia.com"]
        self.nvflare(*args + (["-gpu", *gpu] if gpu else []), timeout=300)

    def submit(self, recipe: BratsFedAvgRecipe) -> str:
        """Export the job into ``<root>/jobs`` and submit it to this running system; returns the job id."""
        recipe.export(os.path.join(self.root, "jobs"))
        return recipe.run(RunningPocEnv(os.path.join(self.root, "poc"))).get_job_id()

    def wait(self, job_id: str, timeout: float) -> str:
        """Wait for the job, echoing the progress in the server's and sites' logs; returns the final status."""
        logs = os.path.join(self.root, "poc", "*", "prod_*", "*", job_id, "log.txt")
        with LogFollower(logs, "poc"):
            return self.nvflare(
                "job", "wait", job_id, "--timeout", str(int(timeout)), timeout=timeout + 60, check=False
            )

    def job_status(self, job_id: str, waited: str = "") -> Optional[str]:
        """FLARE's status of the job (``FINISHED:COMPLETED`` when it finished normally), from its meta, else from the
        output ``waited`` of ``nvflare job wait``; None when neither says."""
        try:
            meta = json.loads(self.nvflare("--format", "json", "job", "meta", job_id, timeout=120, check=False))
            return meta["data"]["status"]
        except (ValueError, KeyError, TypeError, subprocess.TimeoutExpired):
            found = re.search(r"status: (\S+)(?: \((\S+)\))?", waited)
            return (found.group(2) or found.group(1)) if found else None

    def download(self, job_id: str, out_dir: str) -> str:
        self.nvflare("job", "download", job_id, "-o", out_dir, "--force")
        return os.path.join(out_dir, job_id)

    def our_processes(self) -> List[int]:
        """Pids of the processes this POC system started: every process it starts (FLARE's services, their start
        scripts and job processes, the ``nvflare`` commands) inherits ``FEDBRATS_POC_ROOT=<root>``. A process that
        only names the folder (a ``tail -f`` on a log, an editor, the script or ``timeout`` that started this
        command) is not one of them."""
        return marked_processes(PROCESS_MARK, self.root)

    def stop(self, grace: float = 30.0) -> None:
        """Stop the POC services, wait for their processes to exit, kill what remains."""
        if os.path.isdir(os.path.join(self.root, "poc")):
            try:
                self.nvflare("poc", "stop", timeout=120, check=False)
            except subprocess.TimeoutExpired:
                pass
        deadline = time.time() + grace
        while self.our_processes() and time.time() < deadline:
            time.sleep(1)
        stop_marked(PROCESS_MARK, self.root, grace=2.0)
        self.started = False


def synthetic_sites(job: str) -> List[str]:
    """The synthetic sites of ``job``'s definition, else the reference federation's."""
    return list(job_definition(job).synthetic_sites) or list(REFERENCE_SITES)


def make_site_data(root: str, sites: Sequence[Union[str, SiteSpec]], cases: int) -> Dict[str, Dict[str, str]]:
    """One synthetic data root per site (``NAME[:GRADE][:PROFILE][:CASES]``: site-1 HGG-like, site-2 LGG-like by
    default), written unless the same site's data is already there."""
    data = {}
    for spec in parse_sites(sites):
        data.update(ensure_synthetic_sites(os.path.join(root, spec.name), [spec], cases))
    return data


def poc_job_values(overrides: Optional[dict], sites: List[str], gpu: Optional[List[str]] = None) -> dict:
    """The job's values on this POC system: its sites, every one of them awaited unless ``min_clients`` says
    otherwise, and with ``gpu`` one GPU asked for per site."""
    values = {**(overrides or {}), "sites": sites}
    if values.get("min_clients") is None:
        values["min_clients"] = len(sites)
    if gpu and values.get("gpus") is None:
        values["gpus"] = {site: 1 for site in sites}
    return values


def round_trip(
    root: str,
    job: str = DEMO_JOB,
    overrides: Optional[dict] = None,
    site_data: Optional[Dict[str, Dict[str, str]]] = None,
    cases: Optional[int] = None,
    timeout: float = 1800,
    gpu: Optional[List[str]] = None,
    sites: Optional[Sequence[Union[str, SiteSpec]]] = None,
    port: Optional[int] = FL_PORT,
) -> dict:
    """Prepare, start, submit, wait, download, report and stop; returns the report.

    The sites are those of ``site_data`` with their own data, else ``sites`` (``NAME[:GRADE][:PROFILE][:CASES]``;
    default: :func:`synthetic_sites` of the job) on synthetic data. ``port``: the server's port (None: a free one)."""
    start = time.time()
    specs = parse_sites(sorted(site_data) if site_data else sites or synthetic_sites(job))
    sites = [s.name for s in specs]
    poc = PocSystem(root, sites, port=port)
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    for s in previous:
        signal.signal(s, _raise_interrupt)
    try:
        print(f"[poc] 1/6 preparing a POC system with {', '.join(sites)} in {poc.root}", flush=True)
        poc.prepare()
        cases = cases or job_definition(job).synthetic_cases or job_definition(DEMO_JOB).synthetic_cases
        site_data = site_data or make_site_data(os.path.join(poc.root, "data"), specs, cases)
        for site, d in site_data.items():
            path = poc.set_site_data(site, d["data_root"], d["datalist"])
            print(f"[poc]     {site}: data root {d['data_root']} (setting in {path})", flush=True)
        print("[poc] 2/6 starting server and sites", flush=True)
        poc.start(gpu)
        recipe = job_recipe(job, poc_job_values(overrides, sites, gpu))
        job_id = poc.submit(recipe)
        print(f"[poc] 3/6 submitted {os.path.join(poc.root, 'jobs', recipe.name)} as job {job_id}", flush=True)
        print(f"[poc] 4/6 waiting for the job (timeout {timeout:.0f} s)", flush=True)
        waited = poc.wait(job_id, timeout)
        status = poc.job_status(job_id, waited)
        print(f"[poc]     job {job_id}: {status or 'status unknown'}", flush=True)
        if status in UNFINISHED:
            failure = job_failure(status)
            report = {"markdown": "", "paths": [], "failure": failure, "status": status, "result_dir": None}
        else:
            result_dir = poc.download(job_id, os.path.join(poc.root, "results"))
            print(f"[poc] 5/6 downloaded the result to {result_dir}", flush=True)
            report = job_report(poc, job_id, status, result_dir)
            print("[poc] 6/6 cross-site evaluation report\n" + report["markdown"], flush=True)
        if report["failure"]:
            print(f"[poc]     the job did not finish normally: {failure_text(report['failure'])}", flush=True)
            if report.get("resume") and "--resume-from" in report["resume"]:
                workspace = f"NVFLARE_POC_WORKSPACE={poc.env['NVFLARE_POC_WORKSPACE']}"
                print(
                    f"[poc]     to resume it, start this POC system again ({workspace} nvflare poc start -ex "
                    f"admin@nvidia.com, this environment first on PATH) and run the report's command with {workspace}",
                    flush=True,
                )
        report.update(
            {
                "job_id": job_id,
                "result_dir": result_dir,
                "site_data": site_data,
                "port": poc.port,
                "seconds": time.time() - start,
            }
        )
        return report
    finally:
        print("[poc] stopping server and sites", flush=True)
        poc.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
        print(f"[poc] stopped; logs under {os.path.join(poc.root, 'poc')} (each participant's log.txt)", flush=True)


def job_report(poc: PocSystem, job_id: str, status: Optional[str], result_dir: str) -> dict:
    """The report of a downloaded job, with ``failure`` (None when the job finished normally, else when and why it
    ended, from the server's logs and selection) and ``resume`` (the command resuming an aborted run, or None)."""
    server = read_logs([os.path.join(poc.participant_dir("server"), "log.txt")])  # every job's: this one's lines
    failure = server_failure(
        os.path.join(result_dir, "workspace"), status, "\n".join(line for line in server.splitlines() if job_id in line)
    )
    try:
        report = write_report(result_dir, os.path.join(poc.root, "report"), env="poc", failure=failure)
    except FileNotFoundError:
        if not failure:
            raise
        report = {"markdown": "(no report: the job left no cross-site results and no model selection)", "paths": []}
    report.update({"failure": failure, "status": status, "result_dir": result_dir})
    return report


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", default="workspace/poc", help="POC folder (its own HOME, sites, data, results)")
    parser.add_argument(
        "--job",
        default=DEMO_JOB,
        choices=[n for n in job_names() if n != EVAL_JOB],
        help=f"a training job (scoring given models on a running POC system: python jobs/{EVAL_JOB}/job.py "
        "--model M --env poc)",
    )
    parser.add_argument("--rounds", type=int)
    parser.add_argument(
        "--cases",
        type=int,
        help="synthetic cases per site when no --site-data is given (default: the job's, else the demo's)",
    )
    parser.add_argument(
        "--sites",
        nargs="+",
        metavar="SITE[:GRADE][:PROFILE][:CASES]",
        help=f"sites on synthetic data, each {FORMS} (default: the job's synthetic sites, else "
        f"{' '.join(REFERENCE_SITES)})",
    )
    parser.add_argument(
        "--site-data",
        nargs="+",
        metavar="SITE=ROOT[,DATALIST]",
        help="each site's own data root (and datalist), instead of --sites on synthetic data",
    )
    parser.add_argument(
        "--min-clients",
        type=int,
        metavar="N",
        help="sites the job needs: FLARE aborts it when fewer are alive, and a round goes on once N have answered "
        f"and the others had {WAIT_AFTER_MIN} s more (default: every site)",
    )
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument(
        "--gpu", nargs="+", help="GPU ids for the sites (nvflare poc start -gpu); the job asks for one GPU per site"
    )


def parse_site_data(items: List[str]) -> Dict[str, Dict[str, str]]:
    out = {}
    for item in items:
        site, _, value = item.partition("=")
        root, _, datalist = value.partition(",")
        if not site or not root:
            raise ValueError(f"--site-data expects SITE=ROOT[,DATALIST], got {item!r}")
        out[site] = {"data_root": root, "datalist": datalist or os.path.join(root, "datalists", f"{site}.json")}
    return out


def run(args: argparse.Namespace) -> int:
    """Exit code 1 when the job did not finish normally."""
    if args.sites and args.site_data:
        raise SystemExit("fedbrats poc: give --sites (synthetic data) or --site-data (each site's own), not both")
    site_data = parse_site_data(args.site_data) if args.site_data else None
    try:
        sites = parse_sites(sorted(site_data) if site_data else args.sites or synthetic_sites(args.job))
    except ValueError as e:
        raise SystemExit(f"fedbrats poc: {e}") from None
    min_clients = len(sites) if args.min_clients is None else args.min_clients
    if not 1 <= min_clients <= len(sites):
        raise SystemExit(f"fedbrats poc: --min-clients must be between 1 and the {len(sites)} sites")
    overrides = {"num_rounds": args.rounds, "min_clients": min_clients}
    if min_clients < len(sites) and not job_definition(args.job).wait_time_after_min_received:
        overrides["wait_time_after_min_received"] = WAIT_AFTER_MIN
    report = round_trip(args.root, args.job, overrides, site_data, args.cases, args.timeout, args.gpu, sites)
    print(f"[poc] round trip took {report['seconds']:.0f} s; report: {', '.join(report['paths']) or 'none'}")
    if report["failure"]:
        sys.stdout.flush()
        print(
            f"fedbrats poc: job {report['job_id']} did not finish normally: {failure_text(report['failure'])}",
            file=sys.stderr,
        )
        return 1
    return 0

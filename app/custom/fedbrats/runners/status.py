"""``fedbrats status``: where a running job stands, asked of its FLARE server through the admin API.

Job and state from the job's meta, round r of R from the round workflow's statistics (``show_stats``), the sites and
when the server last heard from each from ``check_status``, the validation Dice of each scored global model, the
model selection and the round times from what :meth:`fedbrats.runtime.fl.fedavg.FinalModelScoring.status_event`
adds to the statistics (group ``fedbrats``). A server that does not report that group still gives job, round and
sites.
"""

import argparse
import contextlib
import datetime
import glob
import io
import json
import logging
import os
import statistics
import sys
import time
from typing import Dict, Iterator, List, Optional

from fedbrats.runtime.constants import DICE_METRICS, MEAN_DICE, N_CASES

DEFAULT_POC_ROOT = "workspace/poc"
"""``fedbrats poc``'s default root."""
POC_ADMIN = "admin@nvidia.com"
CONNECT_TIMEOUT = 10.0
STATS_GROUP = "fedbrats"
"""The group of the server's ``show_stats`` that ``FinalModelScoring.status_event`` fills."""
DICE_COLUMNS = (*DICE_METRICS, MEAN_DICE)
ACTIVE = ("SUBMITTED", "APPROVED", "DISPATCHED", "RUNNING")
"""Job states before the end: ``--watch`` goes on while the job is in one of them."""
RECENT_ROUNDS = 5
"""The time per round is the median over this many recent rounds."""


class StatusError(SystemExit):
    """A one-line failure: ``str()`` is the message, the exit code 2 (a ``SystemExit`` of a text would exit 1)."""

    def __init__(self, message: str):
        super().__init__(2)
        self.message = f"fedbrats status: {message}"

    def __str__(self) -> str:
        return self.message


def fail(message: str):
    raise StatusError(message)


def poc_admin_kit(poc_root: str) -> str:
    """The POC admin's startup kit under a ``fedbrats poc`` root, found as ``PocSystem.participant_dir`` finds it."""
    found = glob.glob(os.path.join(os.path.abspath(poc_root), "poc", "*", "prod_*", POC_ADMIN))
    if not found:
        fail(
            f"no POC system under {poc_root} (no poc/*/prod_*/{POC_ADMIN}): give --poc-root of a running "
            "'fedbrats poc', or --startup-kit of an admin's startup kit"
        )
    return max(found, key=os.path.getmtime)


def kit_address(kit: str) -> str:
    """``host:port`` of the server a startup kit's ``fed_admin.json`` names, else the kit's folder."""
    try:
        with open(os.path.join(kit, "startup", "fed_admin.json")) as f:
            admin = json.load(f)["admin"]
        return f"{admin['host']}:{admin['port']}"
    except (OSError, ValueError, KeyError, TypeError):
        return kit


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """FLARE's admin client prints its progress on stdout and logs connection failures: kept out of the output."""
    flare_logger = logging.getLogger("nvflare")
    level = flare_logger.level
    flare_logger.setLevel(logging.CRITICAL)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        flare_logger.setLevel(level)


@contextlib.contextmanager
def admin_session(kit: str, timeout: float = CONNECT_TIMEOUT):
    """A FLARE admin session logged in with a startup kit, closed at the end; one-line errors when it cannot be."""
    from nvflare.fuel.flare_api.api_spec import AuthenticationError, AuthorizationError, NoConnection
    from nvflare.fuel.flare_api.flare_api import new_secure_session

    from fedbrats.federation.envs import kit_user

    if not os.path.isdir(os.path.join(kit, "startup")):
        fail(f"{kit} is not an admin's startup kit (it has no startup/ folder)")
    where = kit_address(kit)
    try:
        with quiet():
            session = new_secure_session(kit_user(kit), kit, timeout=timeout)
    except NoConnection:
        fail(f"cannot reach the FLARE server at {where} within {timeout:.0f} s: is the system running?")
    except (AuthenticationError, AuthorizationError) as e:
        fail(f"the server at {where} refused the login of {kit_user(kit)}: {e}")
    try:
        yield session
    finally:
        with quiet():
            session.close()


def find_job(session, job_id: Optional[str], where: str) -> str:
    """The id of ``job_id`` (a whole id or an unambiguous prefix), or of the newest job not yet finished."""
    from nvflare.fuel.flare_api.api_spec import JobNotFound

    with quiet():
        if job_id is None:
            jobs = session.list_jobs(detailed=True)
        else:
            try:
                return session.get_job_meta(job_id)["job_id"]
            except JobNotFound:
                jobs = session.list_jobs(detailed=True, id_prefix=job_id)
    jobs = sorted(jobs, key=lambda j: j.get("submit_time") or 0)
    if job_id is not None:
        if len(jobs) == 1:
            return jobs[0]["job_id"]
        if jobs:
            fail(f"{job_id} starts the ids of {len(jobs)} jobs on the server at {where}: give more of the id")
        fail(f"no job {job_id} on the server at {where}")
    active = [j for j in jobs if j.get("status") in ACTIVE]
    if active:
        return active[-1]["job_id"]
    newest = f" (the newest: {jobs[-1]['job_id']} {jobs[-1].get('name')}, {jobs[-1].get('status')})" if jobs else ""
    fail(f"no job is running on the server at {where}{newest}; --job JOB_ID shows a finished one")


def snapshot(session, job_id: str) -> dict:
    """What the server says now of a job: its meta, its server statistics, the sites it knows."""
    from nvflare.fuel.flare_api.api_spec import JobNotFound, JobNotRunning, NoClientsAvailable, TargetType
    from nvflare.fuel.hci.proto import MetaKey

    raw = {"job_id": job_id, "stats": None, "client_status": None}
    with quiet():
        raw["meta"] = session.get_job_meta(job_id)
        if raw["meta"].get("status") == "RUNNING":
            try:  # JobNotFound while the job's server process starts or ends
                raw["stats"] = session.show_stats(job_id, TargetType.SERVER)
            except (JobNotFound, JobNotRunning):
                pass
        raw["system"] = session.check_status(TargetType.SERVER)
        try:
            raw["client_status"] = session.check_status(TargetType.CLIENT).get(MetaKey.CLIENT_STATUS)
        except NoClientsAvailable:
            raw["client_status"] = []
    raw["now"] = time.time()
    return raw


def iso_seconds(text: Optional[str]) -> Optional[float]:
    """Epoch seconds of an ISO time (FLARE's ``start_time``), None if there is none."""
    try:
        moment = datetime.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return (moment if moment.tzinfo else moment.astimezone()).timestamp()


def weighted(rows: List[dict]) -> dict:
    """Case-weighted Dice of each region and their mean over the sites' rows (a key missing at a site: None)."""
    cases = sum(r[N_CASES] for r in rows)
    out = {}
    for key in DICE_COLUMNS:
        have = [r for r in rows if isinstance(r.get(key), (int, float))]
        out[key] = sum(r[key] * r[N_CASES] for r in have) / cases if cases and len(have) == len(rows) else None
    return out


def dice_rounds(ours: dict) -> List[dict]:
    """One row per scored global model, by round: case-weighted Dice per region and mean, sites, cases, whether
    every expected site scored it. The rounds are those of the selection's history (a round's site figures come in
    one by one before the selection scores it); without a selection, those the rounds done hold. The mean falls back
    on the selection's score where regions were not kept."""
    per_round: Dict[int, Dict[str, dict]] = {}
    for m in ours.get("site_metrics") or []:
        if isinstance(m.get(N_CASES), int) and m[N_CASES] > 0:
            per_round.setdefault(m["round"], {})[m["site"]] = m
    history = {h["round"]: h for h in (ours.get("selection") or {}).get("history") or [] if "round" in h}
    if "selection" in ours:
        scored = set(history)
    else:
        scored = {r for r in per_round if isinstance(ours.get("rounds_done"), int) and r < ours["rounds_done"]}
    rows = []
    for r in sorted(scored):
        entry = history.get(r, {})
        sites = sorted(entry.get("sites") or per_round.get(r) or {})
        kept = per_round.get(r, {})
        if kept and set(sites) <= set(kept):
            row = weighted([kept[s] for s in sites])
            cases = sum(kept[s][N_CASES] for s in sites)
        else:
            row = dict.fromkeys(DICE_COLUMNS)
            cases = sum((entry.get("sites") or {}).get(s, {}).get(N_CASES) or 0 for s in sites)
        if row[MEAN_DICE] is None and isinstance(entry.get("score"), (int, float)):
            row[MEAN_DICE] = entry["score"]
        rows.append({"round": r, **row, "sites": sites, "cases": cases, "complete": entry.get("complete")})
    return rows


def round_seconds(ours: dict, done: Optional[int] = None, job_seconds: Optional[float] = None) -> Optional[float]:
    """Median time of the recent rounds: from the server's round times (a round runs from its start to the next
    one's; the run's first round, which carries the start-up, only when it is the only one done), else from the
    times the selection records of its global models, else the job's time over the rounds done."""
    rounds = sorted((r for r in ours.get("rounds") or [] if "end" in r), key=lambda r: r["round"])
    starts = {r["round"]: r["start"] for r in ours.get("rounds") or []}
    spans = [starts.get(r["round"] + 1, r["end"]) - r["start"] for r in rounds]
    if len(spans) > 1:
        spans = spans[1:]
    if not spans:
        made = sorted(
            (h["round"], h["seconds"])
            for h in (ours.get("selection") or {}).get("history") or []
            if isinstance(h.get("seconds"), (int, float))
        )
        spans = [(b[1] - a[1]) / (b[0] - a[0]) for a, b in zip(made, made[1:]) if b[0] > a[0]]
        if not spans and made and made[0][0] > 0:
            spans = [made[0][1] / made[0][0]]
    if not spans and done and job_seconds:
        spans = [job_seconds / done]
    return statistics.median(spans[-RECENT_ROUNDS:]) if spans else None


def seconds_left(per_round: Optional[float], rounds_left: int, in_round: Optional[float]) -> Optional[float]:
    """Time left for ``rounds_left`` rounds (the current one counted), ``in_round`` seconds into the current one."""
    if per_round is None or rounds_left <= 0:
        return None if per_round is None else 0.0
    return (rounds_left - 1) * per_round + max(0.0, per_round - (in_round or 0.0))


def summarize(raw: dict) -> dict:
    """The status of a job from a :func:`snapshot`: plain data, printed by :func:`format_status` or as JSON."""
    from_meta = raw.get("meta") or {}
    server = (raw.get("stats") or {}).get("server") or {}
    ours = server.get(STATS_GROUP) if isinstance(server.get(STATS_GROUP), dict) else {}
    workflow_groups = {
        name: g for name, g in server.items() if isinstance(g, dict) and "current_round" in g and "num_rounds" in g
    }
    rounds_group = next(iter(workflow_groups.values()), {})
    selection = ours.get("selection") or {}
    status = from_meta.get("status")
    now = ours.get("server_time") or raw.get("now") or time.time()
    start = iso_seconds(from_meta.get("start_time"))
    job_seconds = max(0.0, now - start) if start and status == "RUNNING" else None

    planned = ours.get("planned_rounds") or rounds_group.get("num_rounds")
    done = ours.get("rounds_done", rounds_group.get("current_round"))
    phase = rounds_group.get("phase")
    current = None
    if status in ACTIVE and status != "RUNNING":
        stage = "waiting to run"
    elif status != "RUNNING":
        stage = f"ended; 'nvflare job download {raw.get('job_id')} -o DIR' fetches its result"
    elif not server:
        stage = "no figures from the job's server process yet (it is starting or ending)"
    elif phase == "train":
        stage, current = "training", (done or 0) + 1
    elif phase in (None, "_init_"):
        stage = "starting the rounds"
    else:
        others = [
            g
            for name, g in server.items()
            if name not in workflow_groups and isinstance(g, dict) and isinstance(g.get("tasks"), dict)
        ]
        if rounds_group.get("tasks"):
            stage = "scoring the final global model"
        elif any(g["tasks"] for g in others):
            workflow = (server.get("ServerRunner") or {}).get("workflow") or "next workflow"
            stage = "cross-site evaluation" if "cross" in workflow else workflow
        else:
            stage = "ending the rounds"

    rows = dice_rounds(ours)
    best_round = selection.get("best_round")
    best = next((r for r in rows if r["round"] == best_round), None)
    per_round = round_seconds(ours, done, job_seconds)
    in_round = None
    started = [r for r in ours.get("rounds") or [] if "end" not in r]
    if current is not None and started and isinstance(ours.get("run_seconds"), (int, float)):
        in_round = ours["run_seconds"] - started[-1]["start"]
    rounds_left = (planned - done) if isinstance(planned, int) and isinstance(done, int) else None
    left = seconds_left(per_round, rounds_left, in_round) if current is not None and rounds_left else None

    return {
        "job": {
            "id": raw.get("job_id") or from_meta.get("job_id"),
            "name": from_meta.get("name"),
            "status": status,
            "submitted": from_meta.get("submit_time_iso"),
            "seconds": job_seconds,
        },
        "stage": stage,
        "round": {"current": current, "done": done, "planned": planned},
        "stopped": selection.get("stopped"),
        "sites": site_rows(raw, selection, now),
        "dice": {"last": rows[-1] if rows else None, "best": best},
        "time": {"per_round": per_round, "left": left, "rounds_left": rounds_left if current is not None else 0},
        "reports_selection": bool(ours),
    }


def site_rows(raw: dict, selection: dict, now: float) -> List[dict]:
    """The job's sites (else every site the server knows): connected or not, seconds since the server last heard
    from each, the state of the job there, the round in which the server gave up on it."""
    clients = {c.get("client_name"): c for c in (raw.get("system") or {}).get("clients") or []}
    deployed = [s for sites in ((raw.get("meta") or {}).get("deploy_map") or {}).values() for s in sites]
    names = selection.get("participants") or [s for s in deployed if s not in ("@ALL", "server")] or sorted(clients)
    job_state = {}
    for c in raw.get("client_status") or []:
        if c.get("job_id") == raw.get("job_id"):
            job_state[c.get("client_name")] = c.get("status")
        else:
            job_state.setdefault(c.get("client_name"), "not running this job")
    lost = selection.get("lost") or {}
    rows = []
    for name in sorted(set(names) | set(lost)):
        heard = (clients.get(name) or {}).get("client_last_conn_time")
        rows.append(
            {
                "site": name,
                "connected": name in clients,
                "last_heard": max(0.0, now - heard) if isinstance(heard, (int, float)) else None,
                "job": job_state.get(name),
                "lost_in_round": lost.get(name),
            }
        )
    return rows


def duration_text(seconds: Optional[float]) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def rounds_text(n: int) -> str:
    return f"{n} round{'' if n == 1 else 's'}"


def dice_line(label: str, row: dict) -> str:
    values = "  ".join(f"{row[k]:.4f}" if row.get(k) is not None else "   -  " for k in DICE_COLUMNS)
    note = "" if row.get("complete") is not False else "; not every site scored it"
    return f"  {label:<22}{values}   {', '.join(row['sites'])} ({row['cases']} cases{note})"


def format_status(summary: dict) -> str:
    """The status as lines of text."""
    job, rounds, timing = summary["job"], summary["round"], summary["time"]
    running = f" for {duration_text(job['seconds'])}" if job["seconds"] is not None else ""
    lines = [f"job {job['id']} ({job['name']}): {job['status']}{running}"]
    if rounds["current"] is not None:
        lines.append(f"round {rounds['current']} of {rounds['planned']}: training ({rounds['done']} done)")
    elif rounds["done"] is not None and job["status"] == "RUNNING":
        lines.append(f"{rounds['done']} of {rounds['planned']} rounds done: {summary['stage']}")
    else:
        lines.append(summary["stage"])
    if summary.get("stopped"):
        stopped = summary["stopped"]
        lines.append(f"rounds stopped after round {stopped['round']} of {stopped['planned']}: {stopped['reason']}")
    sites = summary["sites"]
    lines.append(f"sites: {sum(s['connected'] for s in sites)} of {len(sites)} connected")
    width = max([len(s["site"]) for s in sites] + [4])
    for s in sites:
        heard = f"last heard {duration_text(s['last_heard'])} ago" if s["connected"] else "not connected"
        extra = f", job {s['job']}" if s["job"] else ""
        extra += f", given up in round {s['lost_in_round']}" if s["lost_in_round"] is not None else ""
        lines.append(f"  {s['site']:<{width}}  {heard}{extra}")
    last, best = summary["dice"]["last"], summary["dice"]["best"]
    if last:
        lines.append("validation Dice of the global model, weighted by the sites' validation cases:")
        lines.append(f"  {'':<22}{'  '.join(f'{k:>6}' for k in ('TC', 'WT', 'ET', 'mean'))}")
        lines.append(dice_line(f"after {rounds_text(last['round'])}", last))
        if best:
            lines.append(dice_line(f"best: after {rounds_text(best['round'])}", best))
    elif job["status"] == "RUNNING" and summary["reports_selection"]:
        lines.append("validation Dice: no global model scored yet (the first is scored in round 2)")
    elif job["status"] == "RUNNING" and rounds["done"] is not None:
        lines.append("validation Dice: the server reports none (its workflow is not fedbrats' FinalModelScoring)")
    if timing["per_round"] is not None and job["status"] == "RUNNING":
        text = f"time per round {duration_text(timing['per_round'])}"
        if timing["left"] is not None:
            text += (
                f"; about {duration_text(timing['left'])} left for {rounds_text(timing['rounds_left'])}, "
                "then the final scoring and cross-site evaluation"
            )
        lines.append(text)
    return "\n".join(lines)


def status(kit: str, job_id: Optional[str] = None, timeout: float = CONNECT_TIMEOUT) -> dict:
    """The status of ``job_id`` (default: the newest running job) on the server of an admin's startup kit."""
    with admin_session(kit, timeout) as session:
        return summarize(snapshot(session, find_job(session, job_id, kit_address(kit))))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--startup-kit",
        metavar="KIT",
        help=f"an admin's startup kit folder (default: the POC admin's, {POC_ADMIN}, under --poc-root)",
    )
    parser.add_argument(
        "--poc-root", default=DEFAULT_POC_ROOT, help="root of a running 'fedbrats poc' (default: %(default)s)"
    )
    parser.add_argument(
        "--job", metavar="JOB_ID", help="a job id or its unambiguous start (default: the newest running)"
    )
    parser.add_argument(
        "--watch",
        nargs="?",
        type=float,
        const=10.0,
        metavar="SECONDS",
        help="refresh every SECONDS (default 10) until the job ends or Ctrl-C",
    )
    parser.add_argument("--json", action="store_true", help="print the status as JSON (one line per refresh)")
    parser.add_argument("--timeout", type=float, default=CONNECT_TIMEOUT, help="seconds to reach the server")


def run(args: argparse.Namespace) -> int:
    try:
        return show(args)
    except StatusError as e:
        print(e, file=sys.stderr)
        raise


def show(args: argparse.Namespace) -> int:
    """Print the status once, or again every ``--watch`` seconds until the job ends."""
    from nvflare.fuel.flare_api.api_spec import NoConnection, SessionClosed

    kit = os.path.abspath(args.startup_kit) if args.startup_kit else poc_admin_kit(args.poc_root)
    where = kit_address(kit)
    with admin_session(kit, args.timeout) as session:
        job_id = find_job(session, args.job, where)
        try:
            while True:
                try:
                    summary = summarize(snapshot(session, job_id))
                except (NoConnection, SessionClosed) as e:
                    fail(f"lost the connection to the server at {where}: {e}")
                if args.json:
                    print(json.dumps(summary, indent=None if args.watch else 2), flush=True)
                else:
                    if args.watch and sys.stdout.isatty():
                        print("\033[2J\033[H", end="")
                    stamp = f"[{time.strftime('%H:%M:%S')}]\n" if args.watch else ""
                    print(stamp + format_status(summary) + ("\n" if args.watch else ""), flush=True)
                if not args.watch or summary["job"]["status"] not in ACTIVE:
                    return 0
                time.sleep(max(1.0, args.watch))
        except KeyboardInterrupt:
            return 0

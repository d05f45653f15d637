"""Where a site's data lives: a site-local setting first, then the job's default."""

import json
import os
from typing import Dict, Optional, Tuple

SITE_SETTINGS_FILE = "fedbrats_site.json"
"""Site-local file in the site's ``local/`` folder: ``{"data_root": ..., "datalist": ...}``, and optionally
``"processes"`` and ``"process_timeout"`` (:func:`site_processes`)."""
SITES_ENV = "FEDBRATS_SITES"
"""Environment variable naming a JSON file ``{site: {"data_root": ..., "datalist": ...}}`` (simulator runs)."""
PROCESSES, PROCESS_TIMEOUT = "processes", "process_timeout"
DEFAULT_DATALIST = "datalists/{site}.json"


def _read(path: str) -> dict:
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read site data settings {path}: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"site data settings {path} must hold a JSON object")
    return data


def site_local_settings(site: str, local_dir: Optional[str]) -> Tuple[dict, str]:
    """The site-local data settings and where they came from ({} when there are none)."""
    if local_dir:
        path = os.path.join(local_dir, SITE_SETTINGS_FILE)
        if os.path.isfile(path):
            return _read(path), path
    env_path = os.environ.get(SITES_ENV)
    if env_path:
        sites = _read(env_path)
        if isinstance(sites.get(site), dict):
            return sites[site], f"{env_path} [{site}]"
    return {}, "job defaults"


def resolve_site_data(
    site: str, local_dir: Optional[str], job_data_root: str, job_datalist: str, app_config_dir: str
) -> Tuple[str, str, str]:
    """(data root, datalist path, source) of ``site``.

    A relative datalist is looked up under the data root first, then in the job's config folder,
    which carries the reference datalists of BraTS 2018.
    """
    local, source = site_local_settings(site, local_dir)
    data_root = local.get("data_root") or job_data_root
    datalist = (local.get("datalist") or job_datalist or DEFAULT_DATALIST).replace("{site}", site)
    if not data_root:
        raise ValueError(
            f"{site}: no data root; write {SITE_SETTINGS_FILE} into the site's local folder, "
            f"set {SITES_ENV}, or give the job a data_root"
        )
    data_root = os.path.abspath(os.path.expanduser(data_root))
    if not os.path.isabs(datalist):
        candidates = [os.path.join(data_root, datalist), os.path.join(app_config_dir, datalist)]
        datalist = next((c for c in candidates if os.path.isfile(c)), candidates[0])
    return data_root, datalist, source


def site_processes(site: str, local_dir: Optional[str], default_timeout: float) -> Tuple[int, float, str]:
    """(training processes, seconds a process waits for the others in one exchange, source) of ``site``: its
    ``processes`` (one per GPU; 1 when not set) and ``process_timeout`` (``default_timeout`` when not set)."""
    local, source = site_local_settings(site, local_dir)
    processes, timeout = local.get(PROCESSES, 1), local.get(PROCESS_TIMEOUT, default_timeout)
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
        raise ValueError(f"{site}: {PROCESSES} in {source} must be a whole number of at least 1, got {processes!r}")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise ValueError(f"{site}: {PROCESS_TIMEOUT} in {source} must be a positive number of seconds, got {timeout!r}")
    return processes, float(timeout), source


def write_site_settings(path: str, site_data: Dict[str, Dict[str, object]]) -> str:
    """The file named by FEDBRATS_SITES: each site's data root and datalist (made absolute), and its other settings
    (``processes``) as they are."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    paths = {s: {k: os.path.abspath(v) for k, v in d.items() if v and isinstance(v, str)} for s, d in site_data.items()}
    other = {s: {k: v for k, v in d.items() if not isinstance(v, str)} for s, d in site_data.items()}
    with open(path, "w") as f:
        json.dump({s: {**paths[s], **other[s]} for s in site_data}, f, indent=2)
    return os.path.abspath(path)

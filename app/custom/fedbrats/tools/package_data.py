"""What the installed package holds besides code, and which of its modules travel inside a FLARE job."""

import os
from typing import List, Tuple

import fedbrats

PACKAGE_DIR = os.path.dirname(os.path.abspath(fedbrats.__file__))
PACKAGE = os.path.basename(PACKAGE_DIR)
REFERENCE_DATALISTS = os.path.join(PACKAGE_DIR, "datalists")
"""Reference split of BraTS 2018: ``site-1.json``, ``site-2.json``, ``site-All.json`` and the case table."""
CASE_TABLE = os.path.join(REFERENCE_DATALISTS, "brats18_cases.tsv")
"""The 285 BraTS 2018 training cases and their grade (tab-separated)."""
NOT_SITE_RUNTIME = (os.path.dirname(os.path.abspath(__file__)), REFERENCE_DATALISTS)
"""Folders of the package that no server or site runs: these tools and the reference datalists."""


def reference_datalists() -> List[str]:
    """Paths of the reference datalists (``<site>.json``)."""
    return sorted(os.path.join(REFERENCE_DATALISTS, f) for f in os.listdir(REFERENCE_DATALISTS) if f.endswith(".json"))


def site_runtime_files() -> List[Tuple[str, str]]:
    """(source file, folder inside a job's ``custom/``) of every module the server and the sites run."""
    files = []
    for folder, subfolders, names in os.walk(PACKAGE_DIR):
        subfolders[:] = sorted(
            d for d in subfolders if os.path.join(folder, d) not in NOT_SITE_RUNTIME and d != "__pycache__"
        )
        rel = os.path.join(PACKAGE, os.path.relpath(folder, PACKAGE_DIR))
        files += [(os.path.join(folder, n), os.path.normpath(rel)) for n in sorted(names) if n.endswith(".py")]
    return files

"""What the installed package holds besides its code, and which of its modules travel inside a FLARE job.

The repository's top-level ``datalists/`` and ``jobs/`` are the one copy of each; the package links to them, so an
installed package (a wheel) carries them as package data.
"""

import os
from typing import List, Tuple

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
PACKAGE = os.path.basename(PACKAGE_DIR)
RUNTIME_DIR = os.path.join(PACKAGE_DIR, "runtime")
"""The site runtime: the only modules a job carries (with the package's ``__init__.py``)."""
REFERENCE_DATALISTS = os.path.join(PACKAGE_DIR, "datalists")
"""Reference split of BraTS 2018: ``site-1.json``, ``site-2.json``, ``site-All.json`` and the case table."""
CASE_TABLE = os.path.join(REFERENCE_DATALISTS, "brats18_cases.tsv")
"""The 285 BraTS 2018 training cases and their grade (tab-separated)."""
JOBS_DIR = os.path.join(PACKAGE_DIR, "jobs")
"""The product's jobs: ``<name>/job.py`` each."""


def reference_datalists() -> List[str]:
    """Paths of the reference datalists (``<site>.json``)."""
    return sorted(os.path.join(REFERENCE_DATALISTS, f) for f in os.listdir(REFERENCE_DATALISTS) if f.endswith(".json"))


def site_runtime_files() -> List[Tuple[str, str]]:
    """(source file, folder inside a job's ``custom/``) of every module the server and the sites run."""
    files = [(os.path.join(PACKAGE_DIR, "__init__.py"), PACKAGE)]
    for folder, subfolders, names in os.walk(RUNTIME_DIR):
        subfolders[:] = sorted(d for d in subfolders if d != "__pycache__")
        rel = os.path.join(PACKAGE, os.path.relpath(folder, PACKAGE_DIR))
        files += [(os.path.join(folder, n), os.path.normpath(rel)) for n in sorted(names) if n.endswith(".py")]
    return files

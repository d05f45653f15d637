"""The package's layout: stages that import only the stages below them, no import circle, small folders, job scripts
that import only the job wiring and the runtime."""

import ast
import os
from collections import defaultdict

from conftest import REPO

PACKAGE = os.path.join(REPO, "app", "custom", "fedbrats")
STAGES = ("runtime", "prepare", "evaluation", "federation", "runners", "research")
"""From what a site runs to what only a user's machine runs: each stage may import the stages before it."""
MAX_MODULES = 15
SHARED = ("fedbrats.package_data", "fedbrats.plots")
"""Modules every stage may import: where the package's files are, the look of its pictures."""


def modules():
    """Module name -> file of every module of the package (the shipped datalists and jobs are data)."""
    out = {}
    for folder, dirs, files in os.walk(PACKAGE):
        dirs[:] = [d for d in dirs if d not in ("__pycache__", "datalists", "jobs")]
        for name in files:
            if name.endswith(".py"):
                rel = os.path.relpath(os.path.join(folder, name), os.path.dirname(PACKAGE))[:-3].replace(os.sep, ".")
                out[rel[: -len(".__init__")] if rel.endswith(".__init__") else rel] = os.path.join(folder, name)
    return out


def imported(path):
    """The fedbrats modules a file imports, anywhere in it."""
    names = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fedbrats"):
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("fedbrats"))
    return names


def stage(module):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in STAGES else None


def test_each_stage_imports_only_the_stages_before_it():
    wrong = []
    for module, path in modules().items():
        if stage(module) is None:
            continue
        allowed = STAGES[: STAGES.index(stage(module)) + 1]
        for name in imported(path):
            if stage(name) not in allowed and name not in SHARED:
                wrong.append(f"{module} imports {name}")
            if stage(module) == "runtime" and stage(name) != "runtime":
                wrong.append(f"{module} (shipped in every job) imports {name}")
    assert not wrong, "\n".join(wrong)


def test_no_import_circle():
    known = modules()
    graph = {m: {n for n in imported(p) if n in known and n != m} for m, p in known.items()}
    state, circles = {}, []

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                circles.append(" -> ".join(path[path.index(nxt) :] + [nxt]))
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not circles, "\n".join(circles)


def test_no_folder_holds_more_than_15_modules():
    count = defaultdict(int)
    for path in modules().values():
        if not path.endswith("__init__.py"):
            count[os.path.relpath(os.path.dirname(path), REPO)] += 1
    assert max(count.values()) <= MAX_MODULES, dict(count)


def test_job_scripts_import_the_job_wiring_and_the_runtime_only():
    jobs = os.path.join(REPO, "jobs")
    for name in sorted(os.listdir(jobs)):
        for module in imported(os.path.join(jobs, name, "job.py")):
            assert stage(module) in ("federation", "runtime"), f"jobs/{name}/job.py imports {module}"

"""The README and docs/: a README of at most 200 lines, links that resolve, and the README's results at a glance
equal to the study's own figures in docs/results.json."""

import json
import os
import re

import pytest
from conftest import REPO

LINK = re.compile(r"\]\(([^)\s]+)\)")
PAGES = [os.path.join(REPO, "README.md")] + sorted(
    os.path.join(REPO, "docs", f) for f in os.listdir(os.path.join(REPO, "docs")) if f.endswith(".md")
)


def read(path):
    with open(path) as f:
        return f.read()


def anchors(markdown):
    """GitHub's anchors of a page's headings."""
    out = set()
    for line in markdown.splitlines():
        if line.startswith("#"):
            text = line.lstrip("#").strip().lower()
            out.add(re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", text)))
    return out


def test_readme_is_at_most_200_lines():
    assert len(read(os.path.join(REPO, "README.md")).splitlines()) <= 200


@pytest.mark.parametrize("page", PAGES, ids=lambda p: os.path.relpath(p, REPO))
def test_every_link_of_a_page_resolves(page):
    for target in LINK.findall(read(page)):
        if "://" in target or target.startswith("mailto:"):
            continue
        path, _, anchor = target.partition("#")
        full = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
        assert os.path.exists(full), f"{os.path.relpath(page, REPO)} links to a missing {target}"
        if anchor and full.endswith(".md"):
            assert anchor in anchors(read(full)), f"{os.path.relpath(page, REPO)} links to a missing {target}"


def test_every_docs_page_is_in_the_readmes_index():
    readme = read(os.path.join(REPO, "README.md"))
    for page in PAGES[1:]:
        assert f"](docs/{os.path.basename(page)})" in readme, f"docs/{os.path.basename(page)} is not in the README"


def test_results_at_a_glance_are_the_studys_figures():
    study = json.load(open(os.path.join(REPO, "docs", "results.json")))
    final = {arm: study["arms"][arm]["models"]["final"] for arm in study["arms"]}

    def row(arm):
        model = final[arm]
        sites = [model["sites"][s]["mean_dice"] for s in ("site-1", "site-2")]
        return sites + [model["average"]["mean_dice"], model["average"]["dice_with_et"]]

    expected = {
        "centralised": row("central"),
        "FedAvg": row("fedavg"),
        "local-only": [final[f"local-{s}"]["sites"][s]["mean_dice"] for s in ("site-1", "site-2")],
    }
    cases_with_et = final["central"]["average"]["cases_with_et"]
    assert f"ET on the {cases_with_et} cases with ET" in read(os.path.join(REPO, "README.md"))
    glance = read(os.path.join(REPO, "README.md")).split("## Results at a glance", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1:-1] for line in glance.splitlines() if line.startswith("| ") and "---" not in line]
    for name, values in expected.items():
        row = next(r for r in rows if r[0].strip().startswith(name))
        shown = [float(c) for c in row[1:] if c.strip() not in ("-", "")]
        assert shown == [round(v, 3) for v in values], (name, shown)


def test_the_readmes_verdicts_are_those_of_the_results_pages():
    from fedbrats.research.study_report import targets

    def verdicts(name):
        study = json.load(open(os.path.join(REPO, "docs", f"{name}.json")))
        rows = [line for line in targets(study) if line.startswith("| FedAvg")]
        return {row.split(" | ")[0].strip("| ").split(" (")[0]: row.rsplit(" | ", 1)[1].strip(" |") for row in rows}

    seed_0, seed_1 = verdicts("results"), verdicts("results-seed-1")
    gap = "FedAvg's mean Dice within 0.03 of centralised's"
    lgg = "FedAvg above local-only site-2 on site-2's test cases"
    readme = read(os.path.join(REPO, "README.md"))
    assert seed_0[gap].startswith("not shown") and seed_0[lgg] == "not shown" and seed_1[lgg] == "missed"
    assert 'are both "not shown" at this seed' in readme and 'the shortfall is "missed"' in readme


def test_the_readmes_methods_rows_are_the_method_studys_figures():
    study = json.load(open(os.path.join(REPO, "docs", "results-methods.json")))
    personal = study["arms"]["ditto"]["personal"]
    fedopt = study["arms"]["fedopt"]["models"]["final"]
    local = {s: study["arms"][f"local-{s}"]["models"]["final"]["sites"][s]["mean_dice"] for s in ("site-1", "site-2")}
    expected = {
        "Ditto": [personal["sites"]["site-1"]["mean_dice"], personal["sites"]["site-2"]["mean_dice"]]
        + [personal["average"]["mean_dice"]],
        "FedOpt": [fedopt["sites"]["site-1"]["mean_dice"], fedopt["sites"]["site-2"]["mean_dice"]]
        + [fedopt["average"]["mean_dice"]],
        "local-only, each site": [local["site-1"], local["site-2"]],
    }
    glance = read(os.path.join(REPO, "README.md")).split("| at 1500 steps |", 1)[1].split("\n\n", 1)[0]
    rows = [line.split("|")[1:-1] for line in glance.splitlines() if line.startswith("| ") and "---" not in line]
    for name, values in expected.items():
        row = next(r for r in rows if r[0].strip().startswith(name))
        assert [float(c) for c in row[1:] if c.strip() not in ("-", "")] == [round(v, 3) for v in values], name

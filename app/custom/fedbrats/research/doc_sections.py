"""``## `` sections of a Markdown file that several benchmark commands write into: each command (re)writes its own
section and leaves the others as they are."""

import os
import platform
from typing import List, Optional, Sequence, Tuple

import torch


def _bounds(lines: Sequence[str], heading: str) -> Optional[Tuple[int, int]]:
    if heading not in lines:
        return None
    start = list(lines).index(heading)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return start, end


def replace_section(markdown: str, heading: str, section: str) -> str:
    """``markdown`` with the section under ``heading`` replaced by ``section`` (appended when it has none)."""
    lines = markdown.rstrip("\n").split("\n")
    bounds = _bounds(lines, heading)
    if bounds is None:
        return "\n".join(lines) + "\n\n" + section
    start, end = bounds
    rest = lines[end:]
    return "\n".join(lines[:start]) + "\n" + section + ("\n" + "\n".join(rest) + "\n" if rest else "")


def section_of(markdown: str, heading: str) -> str:
    """The section under ``heading`` of ``markdown``, or an empty string."""
    lines = markdown.rstrip("\n").split("\n")
    bounds = _bounds(lines, heading)
    if bounds is None:
        return ""
    return "\n".join(lines[bounds[0] : bounds[1]]).rstrip("\n") + "\n"


def headings(markdown: str) -> List[str]:
    """The ``## `` headings of ``markdown``, in order."""
    return [line for line in markdown.split("\n") if line.startswith("## ")]


def keep_sections(markdown: str, old: str) -> str:
    """``markdown`` with every section of ``old`` that it does not have carried over: those other commands wrote."""
    for heading in headings(old):
        if heading not in headings(markdown):
            markdown = replace_section(markdown, heading, section_of(old, heading))
    return markdown


def write_section(path: str, heading: str, section: str) -> None:
    """(Re)write one section of the Markdown file at ``path`` (created when missing)."""
    try:
        with open(path) as f:
            old = f.read()
    except FileNotFoundError:
        old = ""
    with open(path, "w") as f:
        f.write(replace_section(old, heading, section))


def section_head(heading: str, result: dict) -> List[str]:
    """A benchmark section's first lines: its heading, the command, the machine and the date it was measured."""
    m = result["machine"]
    return [
        heading,
        "",
        f"Command: `{result['command']}`  ",
        f"Machine: {m['platform']}, {m['cpus']} CPUs, torch {m['torch']}, GPU: {m['cuda'] or 'none'}  ",
        f"Date: {result['date']}",
        "",
    ]


def machine() -> dict:
    """The machine a benchmark ran on, as :func:`section_head` names it."""
    return {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }

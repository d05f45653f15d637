"""``## `` sections of a Markdown file that several benchmark commands write into: each command (re)writes its own
section and leaves the others as they are."""

from typing import List, Optional, Sequence, Tuple


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


def keep_sections(markdown: str, old: str, headings: Sequence[str]) -> str:
    """``markdown`` with the sections under ``headings`` carried over from ``old`` (those ``old`` has)."""
    for heading in headings:
        section = section_of(old, heading)
        if section:
            markdown = replace_section(markdown, heading, section)
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

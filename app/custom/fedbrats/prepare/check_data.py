"""``fedbrats check-data``: every problem of a site's datalist and cases (BraTS or MSD Task01), listed in one pass.

A site refuses a bad case with the first problem it meets; this command reads every entry of the chosen
splits, resolves its files and decodes them through the site's own loading transform (``LoadBratsCased``:
the same guards, no resampling), and lists every problem it finds, one line each.
"""

import argparse
import os
import time
from typing import Callable, Dict, List, Optional, Sequence

from fedbrats.package_data import REFERENCE_DATALISTS
from fedbrats.runtime.constants import SPLITS
from fedbrats.runtime.data.datalist import (
    case_name,
    entry_problem,
    image_files,
    read_datalist,
    resolve_path,
    split_entries,
)
from fedbrats.runtime.data.msd import entry_format, is_msd
from fedbrats.runtime.data.transforms import LoadBratsCased
from fedbrats.runtime.errors import BratsDataError

PREFIX = "[check-data]"


def _resolve(rel: str, data_root: str, case: str, problems: List[BratsDataError]) -> Optional[str]:
    try:
        return resolve_path(rel, data_root, case)
    except BratsDataError as e:
        problems.append(e)
        return None


def check_case(entry: dict, data_root: str, loader: LoadBratsCased) -> List[BratsDataError]:
    """Every problem of one well-formed datalist entry: unresolvable files, then what decoding finds."""
    case = case_name(entry)
    problems: List[BratsDataError] = []
    images = [_resolve(p, data_root, case, problems) for p in image_files(entry)]
    label = _resolve(entry["label"], data_root, case, problems)
    if any(images) or label:
        image = images[0] if is_msd(entry) else images
        _, found = loader.inspect({"case": case, "format": entry_format(entry), "image": image, "label": label})
        problems += found
    return problems


def check_datalist(
    data_root: str, datalist: str, splits: Sequence[str] = SPLITS, say: Callable[[str], None] = print
) -> Dict[str, object]:
    """Check every case of ``splits``; returns ``{"cases", "bad_cases", "problems": [str], "splits": {...}}``."""
    start = time.time()
    problems: List[str] = []
    per_split: Dict[str, int] = {}
    cases = bad_cases = 0
    data = None
    if not os.path.isdir(data_root):
        problems.append(str(BratsDataError("data root is not a folder", path=data_root)))
    else:
        try:
            data = read_datalist(datalist)
        except BratsDataError as e:
            problems.append(str(e))
    if data is not None:
        loader = LoadBratsCased(with_label=True)
        for split in splits:
            try:
                entries = split_entries(data, split, datalist)
            except BratsDataError as e:
                problems.append(str(e))
                say(f"{PREFIX} {split}: {e}")
                continue
            per_split[split] = len(entries)
            for i, entry in enumerate(entries):
                cases += 1
                malformed = entry_problem(entry, i, split, datalist)
                found = [malformed] if malformed else check_case(entry, data_root, loader)
                case = case_name(entry) if isinstance(entry, dict) else f"entry {i}"
                status = f"{len(found)} problem{'s' if len(found) != 1 else ''}" if found else "ok"
                say(f"{PREFIX} {split} {i + 1}/{len(entries)} {case}: {status}")
                bad_cases += bool(found)
                problems += [str(p) for p in found]
    seconds = time.time() - start
    if problems:
        say(f"{PREFIX} problems:")
        for line in problems:
            say(line)
    checked = ", ".join(f"{s} {n}" for s, n in per_split.items())
    say(
        f"{PREFIX} {len(problems)} problem{'s' if len(problems) != 1 else ''} in {bad_cases} of {cases} cases "
        f"({checked or 'no split read'}) of {datalist} in {seconds:.0f} s"
    )
    return {"cases": cases, "bad_cases": bad_cases, "problems": problems, "splits": per_split}


def find_datalist(datalist: str, data_root: str) -> str:
    """A relative datalist missing from the current folder is looked up under the data root, then among the
    package's reference datalists (``datalists/site-1.json``), as a site looks it up in its job's config."""
    if os.path.isabs(datalist) or os.path.exists(datalist):
        return datalist
    candidates = [os.path.join(data_root, datalist), os.path.join(os.path.dirname(REFERENCE_DATALISTS), datalist)]
    return next((c for c in candidates if os.path.isfile(c)), datalist)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--datalist", required=True, help="the site's datalist, e.g. <data-root>/datalists/site-1.json")
    parser.add_argument("--splits", nargs="+", choices=SPLITS, default=list(SPLITS), help="splits to check (all)")


def run(args: argparse.Namespace) -> int:
    """Exit code 2 when any problem was found, 0 otherwise."""
    result = check_datalist(args.data_root, find_datalist(args.datalist, args.data_root), args.splits)
    return 2 if result["problems"] else 0

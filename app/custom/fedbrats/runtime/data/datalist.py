"""MONAI-style datalists of BraTS 2018 and MSD Task01 cases: reading, checking, and making seeded site splits.

An entry is ``{"image": [t1ce, t1, t2, flair], "label": seg}`` for a case in the BraTS layout, or
``{"image": 4D image, "label": seg, "format": "msd"}`` for one in the MSD Task01 layout (:mod:`~.msd`).
"""

import csv
import json
import os
import random
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from fedbrats.runtime.constants import BRATS_FORMAT, DATA_FORMATS, LABEL_SUFFIX, MODALITIES, MSD_FORMAT, SPLITS
from fedbrats.runtime.data.msd import entry_format, file_case_name, is_msd
from fedbrats.runtime.errors import BratsDataError

Datalist = Dict[str, List[Dict[str, object]]]


def case_files(case_id: str, grade: str) -> Dict[str, object]:
    """Datalist entry of one case in the BraTS 2018 layout, relative to the data root."""
    folder = f"{grade}/{case_id}"
    return {
        "image": [f"{folder}/{case_id}_{m}.nii.gz" for m in MODALITIES],
        "label": f"{folder}/{case_id}_{LABEL_SUFFIX}.nii.gz",
    }


ENTRY_FORMS = (
    f"{{'image': [{', '.join(MODALITIES)}], 'label': seg}} (BraTS) or "
    f"{{'image': 4D image, 'label': seg, 'format': '{MSD_FORMAT}'}} (MSD Task01)"
)


def case_name(entry: Mapping[str, object]) -> str:
    """Case id of a datalist entry: the folder holding its label (or first image) in the BraTS layout, the label's
    (or image's) file name in the MSD layout."""
    label = entry.get("label") if isinstance(entry, Mapping) else None
    image = entry.get("image") if isinstance(entry, Mapping) else None
    if is_msd(entry):
        path = label if isinstance(label, str) else image
        return file_case_name(path) if isinstance(path, str) else "?"
    if not isinstance(label, str) and isinstance(image, list) and image and isinstance(image[0], str):
        label = image[0]
    if isinstance(label, str):
        return os.path.basename(os.path.dirname(label)) or os.path.basename(label)
    return "?"


def split_cases(cases: Sequence[str], sizes: Tuple[int, int, int], seed: int) -> Dict[str, List[str]]:
    """Shuffle ``cases`` with ``seed`` and cut them into training / validation / testing of ``sizes``."""
    if sum(sizes) > len(cases):
        raise ValueError(f"split {sizes} needs {sum(sizes)} cases, only {len(cases)} available")
    order = sorted(cases)
    random.Random(seed).shuffle(order)
    out, start = {}, 0
    for split, size in zip(SPLITS, sizes):
        out[split] = sorted(order[start : start + size])
        start += size
    return out


def split_sites(cases: Sequence[str], sizes: Sequence[Tuple[int, int, int]], seed: int) -> List[Dict[str, List[str]]]:
    """Shuffle ``cases`` once with ``seed`` and cut them into one training / validation / testing split per site."""
    if sum(map(sum, sizes)) > len(cases):
        raise ValueError(f"splits {list(sizes)} need {sum(map(sum, sizes))} cases, only {len(cases)} available")
    order = sorted(cases)
    random.Random(seed).shuffle(order)
    out, start = [], 0
    for site_sizes in sizes:
        out.append({})
        for split, size in zip(SPLITS, site_sizes):
            out[-1][split] = sorted(order[start : start + size])
            start += size
    return out


def make_datalist(split: Mapping[str, Sequence[str]], grade_of: Mapping[str, str]) -> Datalist:
    return {s: [case_files(c, grade_of[c]) for c in split.get(s, [])] for s in SPLITS}


def merge_datalists(datalists: Sequence[Datalist]) -> Datalist:
    """Union of several sites' datalists, split by split (the centralised baseline)."""
    return {s: [e for d in datalists for e in d.get(s, [])] for s in SPLITS}


def read_case_table(path: str) -> Dict[str, str]:
    """Case id -> grade from a ``case_id<TAB>grade`` table."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    if not rows or not {"case_id", "grade"} <= set(rows[0]):
        raise ValueError(f"{path}: expected a tab-separated table with columns case_id and grade")
    return {r["case_id"]: r["grade"] for r in rows}


def write_json(path: str, data: object) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def read_datalist(path: str) -> dict:
    """The JSON object of a datalist, with a clear error for a missing or malformed file."""
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise BratsDataError("datalist not found", path=path) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BratsDataError(f"datalist is not valid JSON ({e})", path=path) from None
    except OSError as e:
        raise BratsDataError(f"cannot read the datalist ({e})", path=path) from None
    if not isinstance(data, dict):
        raise BratsDataError(f"datalist must be a JSON object with lists {list(SPLITS)}", path=path)
    return data


def split_entries(data: Mapping[str, object], split: str, path: str) -> list:
    """The non-empty list of entries of ``split`` in a datalist read from ``path``."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    entries = data.get(split)
    if not isinstance(entries, list):
        raise BratsDataError(f"datalist has no list named {split!r}", path=path)
    if not entries:
        raise BratsDataError(f"datalist split {split!r} is empty", path=path)
    return entries


def entry_problem(
    entry: object, index: int, split: str, path: str, require_label: bool = True
) -> Optional[BratsDataError]:
    """The error of a malformed entry (neither of :data:`ENTRY_FORMS`, or of an unknown format), or None."""
    if not isinstance(entry, dict):
        return BratsDataError(f"entry {index} of {split!r} must be {ENTRY_FORMS}", path=path)
    case = case_name(entry)
    data_format, image, label = entry_format(entry), entry.get("image"), entry.get("label")
    if data_format not in DATA_FORMATS:
        message = f"entry {index} of {split!r} has format {data_format!r}; known: {', '.join(DATA_FORMATS)}"
        return BratsDataError(message, case=case, path=path)
    if data_format == BRATS_FORMAT:
        image_ok = isinstance(image, list) and len(image) == len(MODALITIES) and all(isinstance(p, str) for p in image)
    else:
        image_ok = isinstance(image, str)
    label_ok = isinstance(label, str) or (not require_label and label is None)
    if image_ok and label_ok:
        return None
    return BratsDataError(f"entry {index} of {split!r} must be {ENTRY_FORMS}", case=case, path=path)


def load_datalist(path: str, split: str) -> List[Dict[str, object]]:
    """Entries of ``split``, with a clear error for a missing, malformed or empty datalist."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    entries = split_entries(read_datalist(path), split, path)
    for i, entry in enumerate(entries):
        problem = entry_problem(entry, i, split, path)
        if problem is not None:
            raise problem
    return entries


def resolve_path(rel: str, data_root: str, case: str) -> str:
    """Absolute path of one file of ``case``; refuses a path outside ``data_root`` and a missing file."""
    root = os.path.realpath(data_root)
    full = os.path.realpath(os.path.join(root, rel))
    if os.path.commonpath([root, full]) != root:
        raise BratsDataError(f"path escapes the data root {root}", case=case, path=rel)
    if not os.path.isfile(full):
        raise BratsDataError("file not found", case=case, path=full)
    return full


def image_files(entry: Mapping[str, object]) -> List[str]:
    """The image files of an entry or case: a BraTS case's 4 modalities (T1c first), an MSD case's one 4D image.
    The first is the file whose grid the case is on."""
    image = entry["image"]
    return [image] if isinstance(image, str) else list(image)


def resolve_images(entry: Mapping[str, object], data_root: str) -> Dict[str, object]:
    """``{"case", "image"}`` (and ``"format": "msd"`` for an MSD case) with the absolute paths of its images."""
    case = case_name(entry)
    if is_msd(entry):
        return {"case": case, "format": MSD_FORMAT, "image": resolve_path(entry["image"], data_root, case)}
    return {"case": case, "image": [resolve_path(p, data_root, case) for p in entry["image"]]}


def resolve_entry(entry: Mapping[str, object], data_root: str, require_label: bool = True) -> Dict[str, object]:
    """Absolute paths of an entry; refuses paths outside ``data_root`` and missing files."""
    out = resolve_images(entry, data_root)
    if require_label or entry.get("label"):
        out["label"] = resolve_path(entry["label"], data_root, out["case"])
    return out


def resolve_datalist(path: str, split: str, data_root: str) -> List[Dict[str, object]]:
    """Checked, absolute entries of one split of a datalist."""
    if not os.path.isdir(data_root):
        raise BratsDataError("data root is not a folder", path=data_root)
    return [resolve_entry(e, data_root) for e in load_datalist(path, split)]

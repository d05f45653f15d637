"""A case to annotate and its clicks: where the case lies, clicks in voxels or mm, a starting segmentation, each
checked against the case with one clear error (``fedbrats annotate`` and its page)."""

import json
import os
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import nibabel as nib
import numpy as np

from fedbrats.runtime.constants import BRATS_LABELS, CLICK_REGIONS, LABEL_SUFFIX, MODALITIES, SPLITS
from fedbrats.runtime.data import guards
from fedbrats.runtime.data.datalist import case_name, entry_problem, read_datalist, resolve_images
from fedbrats.runtime.data.msd import is_msd
from fedbrats.runtime.data.transforms import LoadBratsCased
from fedbrats.runtime.errors import BratsDataError
from fedbrats.runtime.interactive.clicks import Click

PREFIX = "[annotate]"
SIGNS = {"+": True, "-": False}
LABEL_FILE = f"{{case}}_{LABEL_SUFFIX}.nii.gz"
"""A saved label's file name, beside the case's T1c (the datalists' convention)."""


@dataclass
@dataclass
class CaseFiles:
    """A case to annotate: its name, its modality files (T1c first) and, for a datalist case, where it is listed."""

    case: str
    images: List[str]
    data_root: Optional[str] = None
    datalist: Optional[str] = None
    split: str = ""
    index: int = -1


def find_entry(datalist: str, case: str) -> Tuple[str, int, dict]:
    """(split, index, entry) of ``case`` in a datalist."""
    data = read_datalist(datalist)
    for split in SPLITS:
        entries = data.get(split)
        for i, entry in enumerate(entries if isinstance(entries, list) else []):
            if isinstance(entry, dict) and case_name(entry) == case:
                problem = entry_problem(entry, i, split, datalist, require_label=False)
                if problem is not None:
                    raise problem
                if is_msd(entry):
                    raise BratsDataError("annotate takes cases in the BraTS layout, not MSD", case=case, path=datalist)
                return split, i, entry
    raise BratsDataError(f"no entry of this case in splits {', '.join(SPLITS)}", case=case, path=datalist)


def datalist_case(data_root: str, datalist: str, case: str) -> CaseFiles:
    """A case listed in a site's datalist, its files resolved under the data root."""
    if not os.path.isdir(data_root):
        raise BratsDataError("data root is not a folder", path=data_root)
    split, index, entry = find_entry(datalist, case)
    images = resolve_images(entry, data_root)["image"]
    return CaseFiles(case, images, data_root, datalist, split, index)


def load_images(case: CaseFiles) -> np.ndarray:
    """The case's modalities (channels in the order of MODALITIES) on its grid as stored, through the sites' guards."""
    loaded, problems = LoadBratsCased(with_label=False).inspect({"case": case.case, "image": case.images})
    if problems:
        raise problems[0]
    return loaded["image"].numpy()


def grid_of(case: CaseFiles) -> Tuple[Tuple[int, ...], np.ndarray]:
    """(shape, affine) of the case's grid: its T1c's."""
    try:
        image = nib.load(case.images[0])
    except Exception as e:
        raise BratsDataError(f"cannot read NIfTI ({type(e).__name__}: {e})", case=case.case, path=case.images[0]) from e
    return tuple(int(s) for s in image.shape[:3]), image.affine


def parse_region(text: str, click: str) -> str:
    region = text.strip().lower()
    if region not in CLICK_REGIONS:
        valid = ", ".join(r.upper() for r in CLICK_REGIONS)
        raise BratsDataError(f"unknown region {text.strip()!r} in click {click!r}; valid: {valid}")
    return region


def parse_click_text(text: str) -> Tuple[str, bool, Tuple[float, float, float]]:
    """(region, positive, three numbers) of ``REGION:+|-:A,B,C``."""
    parts = text.split(":")
    form = "REGION:+|-:A,B,C"
    if len(parts) != 3:
        raise BratsDataError(f"click {text!r} is not {form}")
    region = parse_region(parts[0], text)
    if parts[1].strip() not in SIGNS:
        raise BratsDataError(f"click {text!r} has sign {parts[1]!r}; expected + or - ({form})")
    try:
        numbers = tuple(float(v) for v in parts[2].split(","))
    except ValueError:
        numbers = ()
    if len(numbers) != 3 or not np.isfinite(numbers).all():
        raise BratsDataError(f"click {text!r} needs three numbers after the sign ({form})")
    return region, SIGNS[parts[1].strip()], numbers


def world_to_voxel(world: Sequence[float], affine: np.ndarray) -> Tuple[int, int, int]:
    """The voxel (nearest centre) at a position in mm through the grid's affine."""
    voxel = nib.affines.apply_affine(np.linalg.inv(np.asarray(affine, dtype=np.float64)), np.asarray(world, float))
    return tuple(int(v) for v in np.rint(voxel))


def voxel_of(numbers: Sequence[float], text: str) -> Tuple[int, int, int]:
    if any(float(v) != int(v) for v in numbers):
        raise BratsDataError(f"click {text!r}: voxel indices must be integers (--click-world takes mm)")
    return tuple(int(v) for v in numbers)


def inside(click: Click, shape: Sequence[int], case: CaseFiles, text: str) -> Click:
    """The click, refused when its voxel lies outside the volume."""
    if not all(0 <= p < s for p, s in zip(click.position, shape)):
        where = ", ".join(map(str, click.position))
        raise BratsDataError(
            f"click {text!r} at voxel ({where}) lies outside the volume of shape {tuple(shape)}",
            case=case.case,
            path=case.images[0],
        )
    return click


def click_from_text(text: str, affine: np.ndarray, world: bool) -> Click:
    region, positive, numbers = parse_click_text(text)
    position = world_to_voxel(numbers, affine) if world else voxel_of(numbers, text)
    return Click(position=position, positive=positive, region=region)


def click_from_json(item: object, affine: np.ndarray, text: str) -> Click:
    """A click of a clicks file: ``{"region", "positive", "voxel": [i, j, k]}`` or ``"world": [x, y, z]``."""
    form = '{"region", "positive", "voxel": [i, j, k]} or {"region", "positive", "world": [x, y, z]}'
    if not isinstance(item, dict) or not isinstance(item.get("positive"), bool) or "region" not in item:
        raise BratsDataError(f"{text} must be {form}")
    region = parse_region(str(item["region"]), text)
    key = "world" if "world" in item else "voxel"
    numbers = item.get(key)
    if not isinstance(numbers, list) or len(numbers) != 3 or not all(isinstance(v, (int, float)) for v in numbers):
        raise BratsDataError(f"{text} must be {form}")
    position = world_to_voxel(numbers, affine) if key == "world" else voxel_of(numbers, text)
    return Click(position=position, positive=item["positive"], region=region)


def read_clicks_file(path: str, affine: np.ndarray) -> List[Tuple[Click, str]]:
    try:
        with open(path) as f:
            items = json.load(f)
    except (OSError, ValueError) as e:
        raise BratsDataError(f"cannot read the clicks ({e})", path=path) from None
    if not isinstance(items, list):
        raise BratsDataError("a clicks file holds a JSON list of clicks", path=path)
    return [(click_from_json(item, affine, f"{path} click {i}"), f"{path} click {i}") for i, item in enumerate(items)]


def read_start(path: str, case: CaseFiles, shape: Sequence[int], affine: np.ndarray) -> np.ndarray:
    """A starting segmentation in BraTS labels on the case's grid, as uint8."""
    try:
        image = nib.load(path)
        labels = np.asarray(image.dataobj)
    except Exception as e:
        raise BratsDataError(f"cannot read NIfTI ({type(e).__name__}: {e})", case=case.case, path=path) from e
    if labels.shape != tuple(shape):
        raise BratsDataError(
            f"starting segmentation has shape {labels.shape}, the case's grid {tuple(shape)}", case=case.case, path=path
        )
    problem = guards.grid_problem("starting segmentation", image.affine, MODALITIES[0], affine, shape)
    problem = problem or guards.label_problem(labels, BRATS_LABELS)
    if problem:
        raise BratsDataError(problem, case=case.case, path=path)
    return labels.astype(np.uint8)


def label_counts(labels: np.ndarray) -> str:
    return ", ".join(f"label {v}: {int((labels == v).sum())}" for v in BRATS_LABELS[1:])

"""One synthetic BraTS-like case of a grade: a deformed template brain, a glioma, four MRI contrasts; written in the
BraTS or the MSD layout."""

import re
import zlib
from typing import Dict, Sequence, Tuple, Union

import numpy as np

from fedbrats.prepare.phantom.anatomy import SIZES, deform, tissue_maps
from fedbrats.prepare.phantom.imaging import render, tumour_fractions
from fedbrats.prepare.phantom.layouts import write_brats_case, write_msd_case
from fedbrats.prepare.phantom.scanner import (
    REFERENCE,
    ScannerProfile,
    bias_field,
    field_of_view,
    profile_rng,
    scanner_profile,
)
from fedbrats.prepare.phantom.tumour import PROFILES, pick_centre, tumour_labels
from fedbrats.runtime.constants import BRATS_FORMAT, LABEL_SUFFIX, MODALITIES, MSD_FORMAT


def case_id(site: str, grade: str, index: int) -> str:
    return f"Synth18_{grade}_{site.replace('-', '')}_{index:03d}"


def generate_case(
    grade: str, size: str, seed: Sequence[int], profile: Union[str, ScannerProfile] = REFERENCE
) -> Tuple[Dict[str, np.ndarray], np.ndarray, dict]:
    """Volumes of one case: the 4 modalities and ``seg``, the affine and the sampled tumour sizes. ``profile``: the
    scanner profile (a name in :data:`~fedbrats.prepare.phantom.scanner.SCANNER_PROFILES`); the same seed gives the
    same anatomy and tumour under every profile."""
    scanner = scanner_profile(profile)
    rng = np.random.default_rng(list(seed))
    template, affine = tissue_maps(size)
    voxel_mm = float(SIZES[size])
    tumour = PROFILES[grade]
    centre = pick_centre(template["wm"], template["brain"], rng, tumour.core_radius[1] / voxel_mm)
    anatomy = deform(template, rng, voxel_mm, centre, rng.uniform(*tumour.core_radius))
    labels, info = tumour_labels(grade, centre, anatomy, voxel_mm, rng)
    fractions = tumour_fractions(labels, tumour.necrotic, voxel_mm)
    bias = None
    if scanner.bias_sd > 0:
        bias = bias_field(labels.shape, profile_rng(seed, scanner.name), scanner.bias_sd, scanner.bias_cells)
    volumes = {m: render(m, anatomy, fractions, voxel_mm, rng, scanner, bias) for m in MODALITIES}
    volumes[LABEL_SUFFIX] = labels
    return {k: field_of_view(v, scanner.fov_cut_mm, voxel_mm) for k, v in volumes.items()}, affine, info


def site_seed(site: str) -> int:
    """The part of a case's seed that its site gives: N of ``site-N``, a checksum of any other name."""
    numbered = re.fullmatch(r"site-(\d+)", site)
    return int(numbered.group(1)) if numbered else zlib.crc32(site.encode())


def write_case(
    root: str,
    site: str,
    grade: str,
    index: int,
    size: str,
    seed: int,
    layout: str = BRATS_FORMAT,
    profile: str = REFERENCE,
) -> str:
    """Generate one case under the scanner ``profile`` and write it in ``layout``; returns its id."""
    cid = case_id(site, grade, index)
    volumes, affine, _ = generate_case(grade, size, (seed, site_seed(site), index), profile)
    if layout == MSD_FORMAT:
        write_msd_case(root, cid, volumes, affine)
    else:
        write_brats_case(root, cid, grade, volumes, affine)
    return cid

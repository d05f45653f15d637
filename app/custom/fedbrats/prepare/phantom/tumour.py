"""Glioma label maps with BraTS semantics: oedema (2), necrotic / non-enhancing core (1), enhancing tumour (4)."""

from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np
from scipy import ndimage

from fedbrats.prepare.phantom.anatomy import smooth_field


@dataclass(frozen=True)
class TumourProfile:
    """Size ranges in mm and enhancement behaviour of one glioma grade."""

    core_radius: Tuple[float, float]
    oedema_margin: Tuple[float, float]
    rim_thickness: Tuple[float, float]
    necrotic: bool
    enhancing_probability: float
    irregularity: float


PROFILES: Dict[str, TumourProfile] = {
    "HGG": TumourProfile((11.0, 22.0), (8.0, 24.0), (2.5, 5.0), True, 1.0, 0.25),
    "LGG": TumourProfile((12.0, 26.0), (3.0, 12.0), (1.5, 3.0), False, 0.3, 0.15),
}
"""Lower-grade gliomas in BraTS are not small: their whole tumour is of the same order as a glioblastoma's and is
mostly non-enhancing core (label 1) with a thin margin of oedema; enhancement is rare and focal."""


def pick_centre(wm: np.ndarray, brain: np.ndarray, rng: np.random.Generator, margin_vox: float) -> np.ndarray:
    """A white-matter location at least ``margin_vox`` inside the brain."""
    depth = ndimage.distance_transform_edt(brain > 0.5)
    candidates = np.argwhere((wm > 0.6) & (depth > margin_vox))
    if len(candidates) == 0:
        candidates = np.argwhere(depth >= depth.max() * 0.8)
    return candidates[rng.integers(len(candidates))].astype(np.float32)


def _distance(shape, centre, voxel_mm, rng, irregularity) -> np.ndarray:
    """Irregular ellipsoidal distance in mm from ``centre``."""
    grid = np.ogrid[tuple(slice(0, s) for s in shape)]
    axes = rng.uniform(0.75, 1.25, 3)
    r2 = sum(((g - c) * voxel_mm / a) ** 2 for g, c, a in zip(grid, centre, axes))
    return np.sqrt(r2) * (1.0 + irregularity * smooth_field(shape, rng, cells=10))


def tumour_labels(
    grade: str, centre: np.ndarray, anatomy: Dict[str, np.ndarray], voxel_mm: float, rng: np.random.Generator
) -> Tuple[np.ndarray, Dict[str, float]]:
    """BraTS label map (uint8, values 0/1/2/4) of one tumour of ``grade`` and its sampled sizes."""
    p = PROFILES[grade]
    shape = anatomy["brain"].shape
    core_r = rng.uniform(*p.core_radius)
    margin = rng.uniform(*p.oedema_margin)
    rim = rng.uniform(*p.rim_thickness)
    dist = _distance(shape, centre, voxel_mm, rng, p.irregularity)
    in_brain = anatomy["brain"] > 0.5
    # oedema follows white matter tracts: it reaches further where white matter is
    oedema_reach = core_r + margin * (0.35 + 0.9 * anatomy["wm"])
    labels = np.zeros(shape, np.uint8)
    labels[(dist < oedema_reach) & in_brain] = 2
    core = (dist < core_r) & in_brain
    labels[core] = 1
    enhancing = rng.random() < p.enhancing_probability
    if enhancing and p.necrotic:
        gaps = smooth_field(shape, rng, cells=12) > 1.2
        labels[core & (dist >= core_r - rim) & ~gaps] = 4
    elif enhancing:
        focus = centre + rng.uniform(-0.4, 0.4, 3) * core_r / voxel_mm
        spot = _distance(shape, focus, voxel_mm, rng, 0.1) < rng.uniform(2.0, 5.0)
        labels[spot & core] = 4
    info = {"core_radius_mm": round(core_r, 2), "oedema_margin_mm": round(margin, 2), "enhancing": bool(enhancing)}
    return labels, info

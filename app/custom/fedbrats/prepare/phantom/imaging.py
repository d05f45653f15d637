"""MRI appearance: per-modality tissue contrasts, acquisition blur, bias field and Rician noise, through a site's
scanner profile."""

from typing import Dict, Optional

import numpy as np
from scipy import ndimage

from fedbrats.prepare.phantom.anatomy import smooth_field
from fedbrats.prepare.phantom.scanner import REFERENCE, SCANNER_PROFILES, ScannerProfile, acquire, gamma_contrast

# Mean intensity relative to white matter on T1; "core" is necrosis in HGG and non-enhancing tumour in LGG.
CONTRASTS: Dict[str, Dict[str, float]] = {
    "t1ce": {"csf": 0.38, "gm": 0.74, "wm": 1.00, "oedema": 0.62, "necrosis": 0.33, "core": 0.55, "enhancing": 1.55},
    "t1": {"csf": 0.35, "gm": 0.70, "wm": 1.00, "oedema": 0.60, "necrosis": 0.40, "core": 0.55, "enhancing": 0.66},
    "t2": {"csf": 1.80, "gm": 0.95, "wm": 0.65, "oedema": 1.35, "necrosis": 1.70, "core": 1.45, "enhancing": 1.10},
    "flair": {"csf": 0.22, "gm": 0.95, "wm": 0.75, "oedema": 1.45, "necrosis": 0.95, "core": 1.30, "enhancing": 1.20},
}
SCANNER_SCALE = {"t1ce": (600, 1600), "t1": (500, 1200), "t2": (400, 1500), "flair": (300, 900)}
"""Range of the white-matter intensity in stored units: sites and scanners do not share a scale."""
BLUR_MM = {"t1ce": (0.4, 0.4, 0.6), "t1": (0.6, 0.6, 1.5), "t2": (0.6, 0.6, 1.5), "flair": (0.6, 0.6, 1.8)}
"""Gaussian blur (mm) per axis: BraTS T1, T2 and FLAIR are often thick-slice acquisitions."""


def tumour_fractions(labels: np.ndarray, necrotic: bool, voxel_mm: float) -> Dict[str, np.ndarray]:
    """Partial-volume fractions of the tumour compartments."""
    sigma = 0.6 / voxel_mm
    core_name = "necrosis" if necrotic else "core"
    return {
        "oedema": ndimage.gaussian_filter((labels == 2).astype(np.float32), sigma),
        core_name: ndimage.gaussian_filter((labels == 1).astype(np.float32), sigma),
        "enhancing": ndimage.gaussian_filter((labels == 4).astype(np.float32), sigma),
    }


def render(
    modality: str,
    anatomy: Dict[str, np.ndarray],
    tumour: Dict[str, np.ndarray],
    voxel_mm: float,
    rng: np.random.Generator,
    profile: ScannerProfile = SCANNER_PROFILES[REFERENCE],
    bias: Optional[np.ndarray] = None,
) -> np.ndarray:
    """One skull-stripped modality in int16, zero outside the brain as in BraTS, acquired with ``profile``
    (:mod:`fedbrats.prepare.phantom.scanner`; ``bias``: its bias field for the case)."""
    c = CONTRASTS[modality]
    shape = anatomy["brain"].shape
    healthy = sum(anatomy[t] * c[t] * (1 + 0.04 * smooth_field(shape, rng, cells=30)) for t in ("csf", "gm", "wm"))
    healthy = healthy / np.maximum(anatomy["brain"], 1e-3)
    weight = np.clip(sum(tumour.values()), 0, 1)
    lesion = sum(f * c[n] * (1 + 0.12 * smooth_field(shape, rng, cells=40)) for n, f in tumour.items())
    lesion = lesion / np.maximum(weight, 1e-3)
    image = (1 - weight) * healthy + weight * lesion
    if modality in profile.gamma:
        image = gamma_contrast(image, profile.gamma[modality])
    image = ndimage.gaussian_filter(image, [s / voxel_mm for s in BLUR_MM[modality]])
    image *= np.exp(smooth_field(shape, rng, cells=3, sd=rng.uniform(0.05, 0.15)))
    scale = rng.uniform(*SCANNER_SCALE[modality])
    sigma = rng.uniform(0.015, 0.04)
    noisy = acquire(image, modality, profile, voxel_mm, sigma, rng, bias)
    out = np.where(anatomy["brain"] > 0.5, noisy * scale, 0.0)
    return np.clip(np.round(out), 0, np.iinfo(np.int16).max).astype(np.int16)

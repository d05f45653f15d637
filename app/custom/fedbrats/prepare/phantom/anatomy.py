"""Brain anatomy from the MNI152 (ICBM 2009a) template and tissue maps shipped inside nilearn."""

import functools
import importlib.util
import os
from typing import Dict, Tuple

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

FULL_SHAPE = (240, 240, 155)
"""BraTS 2018 grid at 1 mm."""
SIZES = {"full": 1, "reduced": 2}
"""Size option -> voxel size in mm (``reduced`` is 120x120x78 at 2 mm)."""
_TEMPLATE = "mni_icbm152_{}_tal_nlin_sym_09a_converted.nii.gz"


def template_dir() -> str:
    """nilearn's bundled data folder, found without importing nilearn."""
    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("nilearn is not installed; it ships the MNI152 template used for synthetic anatomy")
    return os.path.join(list(spec.submodule_search_locations)[0], "datasets", "data")


def _fit_to_brats_grid(volume: np.ndarray) -> np.ndarray:
    """Pad x and y of the 197x233x189 template to 240 and keep the 155 slices holding the brain."""
    out = np.zeros(FULL_SHAPE, dtype=np.float32)
    sx, sy = (FULL_SHAPE[0] - volume.shape[0]) // 2, (FULL_SHAPE[1] - volume.shape[1]) // 2
    out[sx : sx + volume.shape[0], sy : sy + volume.shape[1], :] = volume[:, :, : FULL_SHAPE[2]]
    return out


def _downsample(volume: np.ndarray, factor: int) -> np.ndarray:
    if factor == 1:
        return volume
    pad = [(0, (-s) % factor) for s in volume.shape]
    v = np.pad(volume, pad)
    shape = [s // factor for s in v.shape]
    return v.reshape(shape[0], factor, shape[1], factor, shape[2], factor).mean(axis=(1, 3, 5))


@functools.lru_cache(maxsize=2)
def tissue_maps(size: str = "full") -> Tuple[Dict[str, np.ndarray], np.ndarray]:
    """Probability maps ``brain``, ``gm``, ``wm``, ``csf`` on the BraTS grid of ``size``, and its affine."""
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; expected one of {sorted(SIZES)}")
    folder = template_dir()
    t1 = nib.load(os.path.join(folder, _TEMPLATE.format("t1")))
    raw = {
        n: np.asarray(nib.load(os.path.join(folder, _TEMPLATE.format(n))).dataobj, np.float32) / 255.0
        for n in ("gm", "wm")
    }
    brain = (np.asarray(t1.dataobj) > 0).astype(np.float32)
    brain = np.clip(ndimage.gaussian_filter(brain, 0.7), 0, 1)
    maps = {"brain": brain, "gm": raw["gm"] * brain, "wm": raw["wm"] * brain}
    maps["csf"] = np.clip(brain - maps["gm"] - maps["wm"], 0, 1)
    factor = SIZES[size]
    maps = {k: _downsample(_fit_to_brats_grid(v), factor).astype(np.float32) for k, v in maps.items()}
    affine = np.array(t1.affine, dtype=np.float64)
    sx, sy = (FULL_SHAPE[0] - t1.shape[0]) // 2, (FULL_SHAPE[1] - t1.shape[1]) // 2
    affine[:3, 3] -= affine[:3, :3] @ np.array([sx, sy, 0])
    affine[:3, :3] *= factor
    affine[:3, 3] += affine[:3, :3] @ np.full(3, (factor - 1) / (2 * factor))
    return maps, affine


def smooth_field(shape, rng: np.random.Generator, cells: int = 6, sd: float = 1.0) -> np.ndarray:
    """Smooth random field of unit-ish scale: coarse Gaussian noise upsampled to ``shape``."""
    coarse = rng.standard_normal([max(2, int(round(s / max(shape) * cells)) + 1) for s in shape])
    coarse = ndimage.gaussian_filter(coarse, 0.7, mode="wrap")
    coarse = torch.from_numpy((coarse / (coarse.std() + 1e-8) * sd).astype(np.float32))[None, None]
    return F.interpolate(coarse, size=tuple(shape), mode="trilinear", align_corners=True)[0, 0].numpy()


def deform(
    maps: Dict[str, np.ndarray],
    rng: np.random.Generator,
    voxel_mm: float,
    mass_centre: np.ndarray = None,
    mass_radius_mm: float = 0.0,
) -> Dict[str, np.ndarray]:
    """Per-case anatomy: random affine, smooth elastic warp, and the mass effect of a tumour."""
    shape = next(iter(maps.values())).shape
    grid = np.stack(np.meshgrid(*[np.arange(s, dtype=np.float32) for s in shape], indexing="ij"))
    centre = (np.array(shape, dtype=np.float32) - 1) / 2
    angle = np.deg2rad(rng.uniform(-8, 8))
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    linear = rot @ np.diag(rng.uniform(0.92, 1.08, 3))
    shift = rng.uniform(-4, 4, 3) / voxel_mm
    rel = grid - centre[:, None, None, None]
    src = np.einsum("ij,j...->i...", np.linalg.inv(linear).astype(np.float32), rel) + centre[:, None, None, None]
    src -= shift[:, None, None, None].astype(np.float32)
    for axis in range(3):
        src[axis] += smooth_field(shape, rng, cells=5, sd=2.5 / voxel_mm)
    if mass_centre is not None and mass_radius_mm > 0:
        d = grid - np.asarray(mass_centre, np.float32)[:, None, None, None]
        r2 = (d**2).sum(0) * voxel_mm**2
        pull = 0.6 * np.exp(-r2 / (2 * (1.5 * mass_radius_mm) ** 2))
        src -= d * pull[None]
    return _resample(maps, src)


def _resample(maps: Dict[str, np.ndarray], src: np.ndarray) -> Dict[str, np.ndarray]:
    """Trilinear sampling of every map at voxel coordinates ``src`` (3, X, Y, Z); zero outside."""
    shape = src.shape[1:]
    norm = [2 * src[a] / (shape[a] - 1) - 1 for a in range(3)]
    grid = torch.from_numpy(np.stack(norm[::-1], axis=-1)[None].astype(np.float32))
    names = list(maps)
    stacked = torch.from_numpy(np.stack([maps[k] for k in names])[None])
    out = F.grid_sample(stacked, grid, mode="bilinear", padding_mode="zeros", align_corners=True)[0].numpy()
    return {k: out[i] for i, k in enumerate(names)}

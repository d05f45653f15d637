"""Guards on the decoded volumes of a case: what makes a scan unusable for training or evaluation.

Each check returns a message (or None) and leaves naming the case and the file to the caller, which wraps it
in a :class:`~fedbrats.runtime.errors.BratsDataError`. They run on every case when a site caches its data, so each
is one pass over the voxels at most.
"""

from typing import Optional, Sequence

import numpy as np
import torch

from fedbrats.runtime.constants import BRATS_LABELS

VOXEL_SIZE_RANGE_MM = (0.2, 6.0)
"""Plausible voxel size (mm) on every axis of an MRI volume. BraTS is 1 mm isotropic; thick clinical slices
reach about 5 mm. Outside this range the header's spacing (or its units) is wrong."""

GRID_TOLERANCE_MM = 0.01
"""How far (mm) a voxel centre of a modality or the label may lie from the same voxel of the first modality.
NIfTI stores the affine as float32, which moves a voxel of a 240 mm field by about 1e-5 mm between files
written from the same grid; a real misregistration is a sizeable fraction of a voxel (0.1 mm and more)."""


def voxel_sizes(affine: np.ndarray) -> np.ndarray:
    """Voxel size (mm) along each array axis: the lengths of the columns of the affine's 3x3 part."""
    return np.sqrt((np.asarray(affine, dtype=np.float64)[:3, :3] ** 2).sum(axis=0))


def _mm(values: Sequence[float]) -> str:
    return " x ".join(f"{v:.3g}" for v in values)


def geometry_problem(name: str, affine: np.ndarray) -> Optional[str]:
    """A non-finite or degenerate affine, or a voxel size outside :data:`VOXEL_SIZE_RANGE_MM`."""
    affine = np.asarray(affine, dtype=np.float64)
    if not np.isfinite(affine).all():
        return f"{name} has a non-finite affine (NaN or Inf in the header's orientation)"
    sizes = voxel_sizes(affine)
    low, high = VOXEL_SIZE_RANGE_MM
    if not ((sizes >= low) & (sizes <= high)).all():
        return f"{name} has voxel size {_mm(sizes)} mm; plausible is {low:g} to {high:g} mm on every axis"
    if abs(np.linalg.det(affine[:3, :3])) < 1e-3 * float(np.prod(sizes)):
        return f"{name} has a degenerate affine (its voxel axes are nearly parallel)"
    return None


def in_memory_order(volume: torch.Tensor) -> torch.Tensor:
    """``volume`` with its axes permuted into the order of its memory (a contiguous view where its voxels are
    dense, as a NIfTI volume stored Fortran-order is): what a whole-volume reduction reads fastest."""
    axes = sorted(range(volume.ndim), key=lambda axis: -volume.stride(axis))
    return volume.permute(axes)


def intensity_problem(name: str, volume: torch.Tensor) -> Optional[str]:
    """Non-finite voxels, or a constant volume (all zero or one value: a missing or empty scan)."""
    volume = in_memory_order(torch.as_tensor(volume).as_subclass(torch.Tensor))
    finite = torch.isfinite(volume) if volume.is_floating_point() else None
    if finite is not None and not bool(finite.all()):
        n_nan = int(torch.isnan(volume).sum())
        n_bad = int(finite.numel() - finite.sum())
        return (
            f"{name} has {n_bad} non-finite voxel(s) of {finite.numel()} ({n_nan} NaN, {n_bad - n_nan} Inf); "
            "a NaN or Inf in the input turns the model's weights into NaN"
        )
    low, high = torch.aminmax(volume)
    if bool(low == high):
        return f"{name} is constant (every voxel is {float(low):g}): a missing or empty scan"
    return None


def grid_offset_mm(affine: np.ndarray, reference: np.ndarray, shape: Sequence[int]) -> float:
    """Largest distance (mm) between the positions that two affines give the corner voxels of ``shape``."""
    corners = np.array(np.meshgrid(*[[0, max(int(s) - 1, 0)] for s in shape], indexing="ij")).reshape(3, -1)
    corners = np.vstack([corners, np.ones((1, corners.shape[1]))])
    diff = (np.asarray(affine, dtype=np.float64) - np.asarray(reference, dtype=np.float64)) @ corners
    return float(np.sqrt((diff[:3] ** 2).sum(axis=0)).max())


def grid_problem(
    name: str, affine: np.ndarray, reference_name: str, reference: np.ndarray, shape: Sequence[int]
) -> Optional[str]:
    """``name`` is not on the voxel grid of ``reference_name`` (not co-registered) beyond :data:`GRID_TOLERANCE_MM`."""
    offset = grid_offset_mm(affine, reference, shape)
    if not offset > GRID_TOLERANCE_MM:  # also False for NaN: a non-finite affine is reported by geometry_problem
        return None
    origin = np.asarray(affine, dtype=np.float64)[:3, 3] - np.asarray(reference, dtype=np.float64)[:3, 3]
    return (
        f"{name} is not on the voxel grid of {reference_name}: its affine places voxels up to {offset:.3g} mm away "
        f"(origin offset ({', '.join(f'{v + 0.0:.3g}' for v in origin)}) mm, tolerance {GRID_TOLERANCE_MM:g} mm); "
        "the modalities and the label must be co-registered on one grid"
    )


def label_problem(volume, labels: Sequence[int] = BRATS_LABELS) -> Optional[str]:
    """Label values outside ``labels``: BraTS's {0, 1, 2, 4}, or MSD Task01's {0, 1, 2, 3} for an MSD case."""
    volume = np.asarray(volume)
    if volume.dtype == np.uint8:
        values = torch.bincount(torch.from_numpy(volume.ravel(order="K"))).nonzero().flatten().numpy()
    elif volume.dtype.kind in "ub" or (volume.dtype.kind == "i" and volume.size and volume.min() >= 0):
        values = np.flatnonzero(np.bincount(volume.ravel().astype(np.intp, copy=False)))  # no sort: one pass
    else:
        values = np.unique(volume)
    bad = sorted(set(values.tolist()) - set(labels))
    if not bad:
        return None
    return f"label values [{', '.join(f'{v:g}' for v in bad[:10])}] outside {list(labels)}"

"""Reading a NIfTI file straight into a tensor, and copying its voxels out of the NIfTI (Fortran) layout."""

import warnings
from typing import Optional

import nibabel as nib
import numpy as np
import torch
from isal import isal_zlib
from monai.data import MetaTensor

GZIP_MAGIC = b"\x1f\x8b"
TILE = 32
"""Voxels along each of the first and last axes of one block of :func:`copy_voxels`: two blocks stay in L2 cache."""


def gunzip(raw: bytes) -> bytes:
    """The content of gzip data of one or more members, each decompressed in one call by ISA-L (zlib's output, about
    twice as fast)."""
    parts = []
    while raw:
        member = isal_zlib.decompressobj(wbits=31)
        parts.append(member.decompress(raw))
        raw = member.unused_data
    return b"".join(parts)


def stored_voxels(image: nib.Nifti1Image, content: bytes) -> np.ndarray:
    """The voxels of ``image`` (read from ``content``) in their stored type and layout: a view of ``content`` when
    the header scales nothing and the type is in this machine's byte order, nibabel's array otherwise."""
    proxy = image.dataobj  # nibabel keeps a file's scaling here, not in the loaded header
    unscaled = getattr(proxy, "slope", None) == 1 and getattr(proxy, "inter", None) == 0
    if not unscaled or not hasattr(proxy, "offset") or not proxy.dtype.isnative:
        return np.asanyarray(proxy)
    count = int(np.prod(proxy.shape))
    return np.frombuffer(content, dtype=proxy.dtype, count=count, offset=int(proxy.offset)).reshape(
        proxy.shape, order="F"
    )


def read_nifti(path: str) -> Optional[MetaTensor]:
    """A 3D or 4D NIfTI-1 file (gzipped or not) as a channel-first MetaTensor viewing the decoded array in its
    stored type and layout, read-only; None for any other file, or one that fails here (MONAI's reader then takes
    it)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
        content = gunzip(raw) if raw[:2] == GZIP_MAGIC else raw
        image = nib.Nifti1Image.from_bytes(content)
        with warnings.catch_warnings():  # a view of the decoded bytes: nothing downstream writes into it
            warnings.simplefilter("ignore", UserWarning)
            volume = torch.from_numpy(stored_voxels(image, content))
        affine = torch.as_tensor(image.affine, dtype=torch.float64)
    except Exception:
        return None
    if volume.ndim not in (3, 4):
        return None
    volume = volume.unsqueeze(0) if volume.ndim == 3 else volume.movedim(-1, 0)
    return MetaTensor(volume, affine=affine, meta={"filename_or_obj": path})


def copy_voxels(target: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """``target.copy_(source)`` of two 3D tensors. A source in NIfTI's layout (first axis fastest) going into a
    row-major target is copied in blocks of :data:`TILE` x :data:`TILE` voxels of the first and last axes, so that
    neither side is read or written a whole plane apart: about twice as fast as one copy on a full-size volume."""
    if source.dim() != 3 or source.stride(0) != 1 or target.stride(-1) != 1 or source.shape != target.shape:
        return target.copy_(source)
    target_yxz, source_yxz = target.transpose(0, 1), source.transpose(0, 1)
    for x in range(0, source.shape[0], TILE):
        for z in range(0, source.shape[2], TILE):
            target_yxz[:, x : x + TILE, z : z + TILE].copy_(source_yxz[:, x : x + TILE, z : z + TILE])
    return target

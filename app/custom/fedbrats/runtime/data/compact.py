"""Compact cached cases: what a site keeps in memory of a preprocessed case, and the case given back from it.

A preprocessed case is zero outside the brain: skull-stripped modalities are zero there, normalisation leaves zeros
at zero and the label marks tumour inside the brain only. :class:`CompactCased` keeps the bounding box of its non-zero
voxels (of any channel of the image or the label), the image in float16 and the label in uint8: a fraction of the
case in float32 (docs/benchmarks.md, data cache). :class:`RestoreCased` puts the box back on the case's grid, zeros
around it, as float32: the tensors the model sees are those of the uncached case but for float16 rounding of the
image.
"""

from typing import Dict, Hashable, List, Mapping, Sequence, Tuple

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import MapTransform

COMPACT_KEY = "compact_box"
"""Key of a compact case's box: ``{"shape": spatial shape of the case, "start": first voxel of the box}``."""
IMAGE_DTYPE, LABEL_DTYPE = torch.float16, torch.uint8
"""How a compact case stores its image and its label (0/1 per region)."""


def nonzero_box(volumes: Sequence[torch.Tensor]) -> Tuple[List[int], List[int]]:
    """(start, stop) of the smallest box holding every non-zero voxel of channel-first ``volumes`` of one grid.

    A case without any non-zero voxel keeps its whole grid."""
    shape = volumes[0].shape[1:]
    inside = torch.zeros(shape, dtype=torch.bool)
    for volume in volumes:
        inside |= torch.as_tensor(volume).ne(0).any(dim=0)
    if not bool(inside.any()):
        return [0] * len(shape), list(shape)
    start, stop = [], []
    for axis in range(len(shape)):
        others = tuple(a for a in range(len(shape)) if a != axis)
        present = torch.nonzero(inside.any(dim=others)).flatten()
        start.append(int(present[0]))
        stop.append(int(present[-1]) + 1)
    return start, stop


def _moved(volume: torch.Tensor, offset: Sequence[int]) -> np.ndarray:
    """The affine of ``volume`` with its origin moved by ``offset`` voxels."""
    affine = torch.as_tensor(volume.affine).numpy() if isinstance(volume, MetaTensor) else np.eye(4)
    affine = np.array(affine, dtype=np.float64)
    affine[:3, 3] += affine[:3, :3] @ np.asarray(offset, dtype=np.float64)
    return affine


def _meta_tensor(data: torch.Tensor, like: torch.Tensor, affine: np.ndarray) -> MetaTensor:
    meta = dict(like.meta) if isinstance(like, MetaTensor) else {}
    out = MetaTensor(data, meta=meta)
    out.affine = torch.as_tensor(affine, dtype=torch.float64)
    return out


class CompactCased(MapTransform):
    """Crop a preprocessed case to the box of its non-zero voxels; image to float16, label to uint8."""

    def __init__(self, keys: Sequence[str] = ("image", "label")):
        super().__init__(keys=list(keys), allow_missing_keys=True)

    def __call__(self, data: Mapping[Hashable, object]) -> Dict[Hashable, object]:
        d = dict(data)
        keys = list(self.key_iterator(d))
        shape = list(d[keys[0]].shape[1:])
        start, stop = nonzero_box([d[k] for k in keys])
        box = (slice(None),) + tuple(slice(a, b) for a, b in zip(start, stop))
        for key in keys:
            volume = d[key]
            dtype = IMAGE_DTYPE if key == "image" else LABEL_DTYPE
            # a copy, never a view: the float32 volume is freed
            cropped = torch.as_tensor(volume)[box].to(dtype=dtype, copy=True, memory_format=torch.contiguous_format)
            d[key] = _meta_tensor(cropped, volume, _moved(volume, start))
        d[COMPACT_KEY] = {"shape": shape, "start": start}
        return d


class RestoreCased(MapTransform):
    """A compact case back on its whole grid as float32, zeros outside its box; other cases pass unchanged."""

    def __init__(self, keys: Sequence[str] = ("image", "label")):
        super().__init__(keys=list(keys), allow_missing_keys=True)

    def __call__(self, data: Mapping[Hashable, object]) -> Dict[Hashable, object]:
        d = dict(data)
        box = d.pop(COMPACT_KEY, None)
        if box is None:
            return d
        for key in self.key_iterator(d):
            volume = d[key]
            full = torch.zeros((volume.shape[0], *box["shape"]), dtype=torch.float32)
            inner = tuple(slice(a, a + n) for a, n in zip(box["start"], volume.shape[1:]))
            full[(slice(None),) + inner] = torch.as_tensor(volume)
            d[key] = _meta_tensor(full, volume, _moved(volume, [-a for a in box["start"]]))
        return d


def tensor_bytes(item: object) -> int:
    """Bytes held by the tensors and arrays of a (nested) case: what caching it costs."""
    if isinstance(item, torch.Tensor):
        return item.numel() * item.element_size()
    if isinstance(item, np.ndarray):
        return int(item.nbytes)
    if isinstance(item, Mapping):
        return sum(tensor_bytes(v) for v in item.values())
    if isinstance(item, (list, tuple)):
        return sum(tensor_bytes(v) for v in item)
    return 0

"""Interactive segmentation of one case with the Deepgrow-style model: clicks in, BraTS labels out, on the case's
own grid.

For a user interface (``fedbrats annotate``, the web page)::

    annotator = Annotator.from_model_file("best_FL_global_model.pt")
    case = annotator.load_case({"t1ce": ..., "t1": ..., "t2": ..., "flair": ...})
    labels = annotator.segment(case, [Click((120, 96, 70), True, "et")], start=None)

``segment`` is stateless: pass every click of the session each time (later clicks win where two disagree). A click's
``position`` indexes the case's NIfTI array as stored (``nibabel.load(path).get_fdata()[x, y, z]``), the grid of the
returned labels. ``start``, labels {0, 1, 2, 4} on that grid (e.g. the federation's model's segmentation from
``fedbrats infer``), is the segmentation the clicks correct; None starts from nothing. The result always agrees with
the clicks: a ball of radius :data:`~fedbrats.runtime.interactive.consistency.RADIUS` voxels around a positive click
lies in its region (and the regions around it), around a negative one outside it (and the regions inside it).
"""

from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Union

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import Invertd

from fedbrats.evaluation.model_files import load_model, open_model
from fedbrats.evaluation.regions import brats_labels, label_regions
from fedbrats.runtime.constants import MODALITIES, MSD_FORMAT
from fedbrats.runtime.data.loaders import data_errors
from fedbrats.runtime.data.transforms import eval_transforms
from fedbrats.runtime.engine import select_device
from fedbrats.runtime.errors import BratsDataError
from fedbrats.runtime.interactive.clicks import Click
from fedbrats.runtime.interactive.consistency import force_clicks
from fedbrats.runtime.interactive.session import interactive_logits
from fedbrats.runtime.model import build_model
from fedbrats.runtime.settings import TrainSettings

__all__ = ["Annotator", "AnnotatorCase", "Click"]

ImageFiles = Union[Mapping[str, str], Sequence[str], str]
"""A case's images: ``{modality: path}`` for every modality (t1ce, t1, t2, flair), the four paths in that order, or
one 4D image in the MSD Task01 layout."""


@dataclass
class AnnotatorCase:
    """A case preprocessed once for the model: ``shape`` is its file grid, ``to_model`` maps a voxel index of it
    (homogeneous) to the model's grid."""

    name: str
    data: Dict[str, object] = field(repr=False)
    shape: tuple
    to_model: np.ndarray = field(repr=False)

    @property
    def image(self) -> MetaTensor:
        return self.data["image"]


def case_entry(image_files: ImageFiles, name: str = "case") -> Dict[str, object]:
    """The datalist-style entry of ``image_files``."""
    if isinstance(image_files, str):
        return {"case": name, "format": MSD_FORMAT, "image": image_files}
    if isinstance(image_files, Mapping):
        missing = [m for m in MODALITIES if m not in image_files]
        if missing:
            raise BratsDataError(f"no image for {missing} (give one per modality of {list(MODALITIES)})", case=name)
        return {"case": name, "image": [str(image_files[m]) for m in MODALITIES]}
    if len(image_files) != len(MODALITIES):
        raise BratsDataError(f"expected {len(MODALITIES)} images ({', '.join(MODALITIES)})", case=name)
    return {"case": name, "image": [str(p) for p in image_files]}


class Annotator:
    """The interactive model of a model file, on a case at a time."""

    def __init__(self, model: torch.nn.Module, settings: TrainSettings, device: Union[str, torch.device] = "cpu"):
        if not settings.interactive:
            raise ValueError("not an interactive model: its settings say interactive false (train brats_deepgrow)")
        self.settings = settings
        self.device = select_device(str(device))
        self.model = model.to(self.device).eval()
        self.logits = interactive_logits(self.model, settings, self.device)
        self.preprocess = eval_transforms(settings, with_label=False)
        self.invert = Invertd(keys="pred", transform=self.preprocess, orig_keys="image", nearest_interp=False)

    @classmethod
    def from_model_file(
        cls, path: str, device: str = "cpu", settings: Optional[str] = None, job: Optional[str] = None
    ) -> "Annotator":
        """The model saved at ``path`` (a global or local model of a ``brats_deepgrow`` run), its settings found as
        ``fedbrats infer`` finds them (:func:`~fedbrats.evaluation.model_files.open_model`)."""
        model_file = open_model(path, settings, job)
        if not model_file.settings.interactive:
            raise BratsDataError("not an interactive model (train brats_deepgrow)", path=path)
        return cls(load_model(model_file), model_file.settings, device)

    @classmethod
    def untrained(cls, settings: TrainSettings, device: str = "cpu") -> "Annotator":
        """A model of ``settings`` (made interactive) with its initial weights: for tests."""
        settings = settings.replace(interactive=True)
        return cls(build_model(settings), settings, device)

    def load_case(self, image_files: ImageFiles, name: str = "case") -> AnnotatorCase:
        """Read and preprocess a case once; :class:`~fedbrats.runtime.errors.BratsDataError` when it cannot be."""
        with data_errors():
            data = self.preprocess(case_entry(image_files, name))
        image = data["image"]
        file_affine = np.asarray(image.meta["original_affine"], dtype=np.float64)
        model_affine = np.asarray(image.affine, dtype=np.float64)
        shape = tuple(int(s) for s in image.meta["spatial_shape"])
        return AnnotatorCase(name, data, shape, np.linalg.solve(model_affine, file_affine))

    def segment(self, case: AnnotatorCase, clicks: List[Click], start: Optional[np.ndarray] = None) -> np.ndarray:
        """BraTS labels {0, 1, 2, 4} (uint8, the shape of the case's NIfTI) of the case with these clicks, correcting
        ``start`` (labels on the same grid; None: nothing)."""
        return brats_labels(self.regions(case, clicks, start))

    def regions(self, case: AnnotatorCase, clicks: List[Click], start: Optional[np.ndarray] = None) -> np.ndarray:
        """Region masks (TC, WT, ET) on the case's grid, as :meth:`segment` labels them."""
        image = case.image
        prior = None if start is None else torch.from_numpy(self._to_model_grid(case, start))[None]
        logits = self.logits(image.as_tensor()[None], prior, self._model_clicks(case, clicks))
        data = dict(case.data)
        data["pred"] = MetaTensor(
            logits[0].sigmoid(), meta=dict(image.meta), applied_operations=list(image.applied_operations)
        )
        probabilities = torch.as_tensor(self.invert(data)["pred"]).numpy()
        return force_clicks(probabilities > 0.5, clicks)

    def _model_clicks(self, case: AnnotatorCase, clicks: Sequence[Click]) -> List[Click]:
        """The clicks at the nearest voxel of the model's grid; those outside it are left out."""
        shape = tuple(case.image.shape[1:])
        out = []
        for click in clicks:
            position = np.rint(case.to_model @ np.array([*click.position, 1.0]))[:3].astype(int)
            if all(0 <= p < s for p, s in zip(position, shape)):
                out.append(Click(tuple(position), click.positive, click.region))
        return out

    def _to_model_grid(self, case: AnnotatorCase, labels: np.ndarray) -> np.ndarray:
        """Region masks (TC, WT, ET) of labels on the case's grid, sampled (nearest) on the model's grid."""
        labels = np.asarray(labels)
        if labels.shape != case.shape:
            raise ValueError(f"start labels of shape {labels.shape} do not fit the case's grid {case.shape}")
        shape = tuple(case.image.shape[1:])
        index = np.indices(shape).reshape(3, -1)
        to_file = np.linalg.inv(case.to_model)
        source = np.rint(to_file[:3, :3] @ index + to_file[:3, 3:]).astype(int)
        inside = np.all((source >= 0) & (source < np.array(case.shape)[:, None]), axis=0)
        regions = label_regions(labels)
        out = np.zeros((regions.shape[0], index.shape[1]), np.float32)
        out[:, inside] = regions[:, source[0, inside], source[1, inside], source[2, inside]]
        return out.reshape(regions.shape[0], *shape)

"""The interactive annotator: BraTS labels on the case's own grid that agree with every click, and a start
segmentation and clicks mapped onto the model's grid."""

import nibabel as nib
import numpy as np
import pytest
import torch
from builders import LPS_1_5MM, modality_path, write_case

from fedbrats.evaluation.annotator import Annotator, Click
from fedbrats.evaluation.regions import label_regions
from fedbrats.runtime.constants import BRATS_LABELS, LABEL_SUFFIX, MODALITIES
from fedbrats.runtime.data.transforms import eval_transforms
from fedbrats.runtime.settings import TrainSettings

SETTINGS = TrainSettings.from_dict({"crop": [32, 32, 32], "init_filters": 8, "pixdim": 2.0, "interactive": True})


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """A case on a non-RAS grid of 1.5 mm voxels, its files and its labels."""
    root = str(tmp_path_factory.mktemp("annotate"))
    entry = write_case(root, "Case_001", shape=(30, 28, 26), affine=LPS_1_5MM)
    files = {m: modality_path(root, entry, m) for m in MODALITIES}
    labels = np.asarray(nib.load(modality_path(root, entry, LABEL_SUFFIX)).dataobj)
    return files, labels, {**entry, "image": list(files.values()), "label": modality_path(root, entry, LABEL_SUFFIX)}


@pytest.fixture(scope="module")
def annotator():
    torch.manual_seed(0)
    return Annotator.untrained(SETTINGS)


def test_labels_lie_on_the_case_grid_and_obey_every_click(case, annotator):
    files, labels, _ = case
    loaded = annotator.load_case(files)
    assert loaded.shape == labels.shape
    clicks = [Click((15, 14, 13), True, "et"), Click((2, 2, 2), True, "wt"), Click((27, 25, 23), False, "wt")]
    clicks.append(Click((15, 18, 13), False, "tc"))
    out = annotator.segment(loaded, clicks, start=None)
    assert out.shape == labels.shape and out.dtype == np.uint8 and set(np.unique(out)) <= set(BRATS_LABELS)
    assert out[15, 14, 13] == 4 and out[14, 14, 13] == 4  # ET, and the ball around it
    assert out[2, 2, 2] == 2 and out[27, 25, 23] == 0
    assert out[15, 18, 13] in (0, 2)  # outside TC and ET
    assert annotator.segment(loaded, [Click((2, 2, 2), False, "wt")])[2, 2, 2] == 0


def test_start_segmentation_and_clicks_map_onto_the_model_grid(case, annotator):
    files, labels, entry = case
    loaded = annotator.load_case(files)
    expected = eval_transforms(SETTINGS)(entry)["label"].numpy().astype(bool)
    prior = annotator._to_model_grid(loaded, labels).astype(bool)
    assert prior.shape == expected.shape
    assert (prior == expected).mean() > 0.99
    for position in np.argwhere(label_regions(labels)[2])[::7]:
        (moved,) = annotator._model_clicks(loaded, [Click(tuple(position), True, "et")])
        assert expected[1][moved.position]  # in WT at least: ET's border may move by half a voxel


def test_a_case_of_three_images_and_a_diagnostic_model_are_refused(case, annotator):
    files, _, _ = case
    with pytest.raises(Exception, match="expected 4 images"):
        annotator.load_case(list(files.values())[:3])
    with pytest.raises(ValueError, match="not an interactive model"):
        Annotator(torch.nn.Identity(), SETTINGS.replace(interactive=False))

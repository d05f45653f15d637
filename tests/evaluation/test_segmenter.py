import os

import nibabel as nib
import numpy as np
from builders import LPS_1_5MM, tumour_case, write_case

from fedbrats.evaluation.evaluate import case_scores
from fedbrats.evaluation.segmenter import CaseSegmenter, write_labels
from fedbrats.runtime.constants import SCORE_METRICS
from fedbrats.runtime.data.guards import voxel_sizes
from fedbrats.runtime.data.transforms import eval_transforms
from fedbrats.runtime.settings import TrainSettings


def oracle(case, settings):
    """Logits that predict the case's reference label, resampled by the site's own preprocessing."""
    reference = eval_transforms(settings, with_label=True)(case)["label"]
    return lambda images: reference[None].float() * 20 - 10


def test_predicting_the_reference_gives_it_back_on_a_non_ras_1_5_mm_grid(tmp_path):
    shape = (40, 36, 30)
    images, labels = tumour_case(shape, seed=5)
    entry = write_case(str(tmp_path), "Case_LPS", shape=shape, images=images, labels=labels, affine=LPS_1_5MM)
    images = [str(tmp_path / p) for p in entry["image"]]
    case = {"case": "Case_LPS", "image": images, "label": str(tmp_path / entry["label"])}
    settings = TrainSettings.from_dict({"crop": [32, 32, 32], "init_filters": 8, "pixdim": 1.0})
    # the model sees the case reoriented to RAS and resampled to 1 mm
    assert eval_transforms(settings, with_label=False)(case)["image"].shape[1:] == (60, 44, 54)
    predicted = CaseSegmenter(settings, oracle(case, settings))({"case": "Case_LPS", "image": images})
    np.testing.assert_array_equal(predicted, labels)
    scores = case_scores(predicted, labels, voxel_sizes(LPS_1_5MM))
    assert scores == {name: 0.0 if name.startswith("hd95") else 1.0 for name in SCORE_METRICS}


def test_written_labels_keep_the_grid_of_the_t1c(tmp_path):
    entry = write_case(str(tmp_path), "Case_A", shape=(20, 18, 16), affine=LPS_1_5MM)
    t1c = str(tmp_path / entry["image"][0])
    labels = np.zeros((20, 18, 16), np.uint8)
    labels[5:8, 5:8, 5:8] = 4
    out = str(tmp_path / "Case_A_seg.nii.gz")
    write_labels(labels, t1c, out)
    written = nib.load(out)
    assert written.shape == (20, 18, 16) and written.get_data_dtype() == np.uint8
    np.testing.assert_allclose(written.affine, LPS_1_5MM)
    np.testing.assert_array_equal(np.asarray(written.dataobj), labels)
    assert os.listdir(tmp_path).count("Case_A_seg.nii.gz") == 1

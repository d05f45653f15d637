import numpy as np
from builders import tumour_case

from fedbrats.evaluation.regions import brats_labels, label_regions


def test_labels_survive_the_round_trip_through_regions():
    _, labels = tumour_case(seed=4)
    assert set(np.unique(labels)) == {0, 1, 2, 4}
    np.testing.assert_array_equal(brats_labels(label_regions(labels)), labels)


def test_regions_are_nested_then_written_wt_tc_et():
    # voxels: none, WT only, TC only, TC+WT, ET only, ET+TC+WT, ET+WT
    tc = [0, 0, 1, 1, 0, 1, 0]
    wt = [0, 1, 0, 1, 0, 1, 1]
    et = [0, 0, 0, 0, 1, 1, 1]
    masks = np.array([tc, wt, et], dtype=bool)[:, :, None, None]
    labels = brats_labels(masks)
    assert labels[:, 0, 0].tolist() == [0, 2, 1, 1, 4, 4, 4]
    tc_out, wt_out, et_out = label_regions(labels)
    assert (et_out <= tc_out).all() and (tc_out <= wt_out).all()
    assert labels.dtype == np.uint8

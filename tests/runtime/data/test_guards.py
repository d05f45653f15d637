"""Input guards of the site's loading transform (fedbrats.runtime.data.guards via LoadBratsCased)."""

import numpy as np
import pytest
from builders import rewrite_volume, shifted, tumour_case, write_case

from fedbrats.runtime.data import guards
from fedbrats.runtime.data.datalist import resolve_entry
from fedbrats.runtime.data.loaders import make_dataset
from fedbrats.runtime.data.transforms import LoadBratsCased
from fedbrats.runtime.errors import BratsDataError


def load_through_the_site(root, entry, settings):
    """What a site does when it prepares its data: resolve the entry and cache its preprocessing."""
    return make_dataset([resolve_entry(entry, root)], settings, train=False)


def refused(tmp_path, settings, case, change, match):
    """Write a good case, apply ``change(root, entry)``; the site must refuse it naming the case and the file."""
    root = str(tmp_path)
    entry = write_case(root, case, seed=3)
    bad_file = change(root, entry)
    with pytest.raises(BratsDataError, match=match) as err:
        load_through_the_site(root, entry, settings)
    message = str(err.value)
    assert message.startswith(f"case {case}, file "), message
    assert err.value.case == case and err.value.path.endswith(bad_file), message
    return message


def test_a_good_case_passes_every_guard(tmp_path, tiny_settings):
    root = str(tmp_path)
    entry = write_case(root, "Case_Good", seed=3)
    out, problems = LoadBratsCased().inspect(resolve_entry(entry, root))
    assert problems == []
    assert out["image"].shape == (4, 32, 32, 32) and out["label"].shape == (1, 32, 32, 32)
    assert load_through_the_site(root, entry, tiny_settings)[0]["image"].shape == (4, 32, 32, 32)


def test_nan_voxel(tmp_path, tiny_settings):
    def change(root, entry):
        images, _ = tumour_case(seed=3)
        images[0][16, 16, 16] = np.nan
        rewrite_volume(root, entry, "t1ce", images[0])
        return "Case_NaN_t1ce.nii.gz"

    message = refused(tmp_path, tiny_settings, "Case_NaN", change, r"t1ce has 1 non-finite voxel\(s\)")
    assert "(1 NaN, 0 Inf)" in message


def test_inf_voxels(tmp_path, tiny_settings):
    def change(root, entry):
        images, _ = tumour_case(seed=3)
        images[2][3:5, 7, 9] = [np.inf, -np.inf]
        rewrite_volume(root, entry, "t2", images[2])
        return "Case_Inf_t2.nii.gz"

    message = refused(tmp_path, tiny_settings, "Case_Inf", change, r"t2 has 2 non-finite voxel\(s\)")
    assert "(0 NaN, 2 Inf)" in message


def test_all_zero_modality(tmp_path, tiny_settings):
    def change(root, entry):
        rewrite_volume(root, entry, "flair", np.zeros((32, 32, 32), np.float32))
        return "Case_Zero_flair.nii.gz"

    refused(tmp_path, tiny_settings, "Case_Zero", change, r"flair is constant \(every voxel is 0\): a missing")


def test_constant_modality(tmp_path, tiny_settings):
    def change(root, entry):
        rewrite_volume(root, entry, "t1", np.full((32, 32, 32), 117, np.int16))
        return "Case_Const_t1.nii.gz"

    refused(tmp_path, tiny_settings, "Case_Const", change, r"t1 is constant \(every voxel is 117\)")


def test_modality_shifted_by_40_mm(tmp_path, tiny_settings):
    def change(root, entry):
        rewrite_volume(root, entry, "t1", affine=shifted(40.0))
        return "Case_Shift_t1.nii.gz"

    message = refused(tmp_path, tiny_settings, "Case_Shift", change, "t1 is not on the voxel grid of t1ce")
    assert "up to 40 mm away (origin offset (40, 0, 0) mm" in message and "co-registered" in message


def test_label_with_another_affine(tmp_path, tiny_settings):
    def change(root, entry):
        rewrite_volume(root, entry, "seg", affine=np.diag([1.0, 1.0, 1.2, 1.0]))  # same shape, other spacing
        return "Case_LabGrid_seg.nii.gz"

    message = refused(tmp_path, tiny_settings, "Case_LabGrid", change, "label is not on the voxel grid of t1ce")
    assert "up to 6.2 mm away" in message  # the last of 32 slices: 31 x 0.2 mm


def test_implausible_voxel_size(tmp_path, tiny_settings):
    def change(root, entry):
        for name in ("t1ce", "t1", "t2", "flair", "seg"):  # one consistent grid, 10 mm slices
            rewrite_volume(root, entry, name, affine=np.diag([1.0, 1.0, 10.0, 1.0]))
        return "Case_Vox_t1ce.nii.gz"

    refused(tmp_path, tiny_settings, "Case_Vox", change, r"t1ce has voxel size 1 x 1 x 10 mm; plausible is 0.2 to 6")


def test_zero_voxel_size(tmp_path, tiny_settings):
    def change(root, entry):
        rewrite_volume(root, entry, "t2", affine=np.diag([0.0, 1.0, 1.0, 1.0]))
        return "Case_Flat_t2.nii.gz"

    refused(tmp_path, tiny_settings, "Case_Flat", change, r"t2 has voxel size 0 x 1 x 1 mm")


def test_header_rounding_is_within_the_grid_tolerance(tmp_path, tiny_settings):
    root = str(tmp_path)
    entry = write_case(root, "Case_Round", seed=3)
    rewrite_volume(root, entry, "t2", affine=shifted(1e-4, axis=2, affine=np.diag([1.0, 1.0, 1.0 + 1e-6, 1.0])))
    assert LoadBratsCased().inspect(resolve_entry(entry, root))[1] == []


def test_inspect_collects_every_problem_of_a_case(tmp_path):
    root = str(tmp_path)
    entry = write_case(root, "Case_Many", seed=3)
    images, _ = tumour_case(seed=3)
    images[0][0, 0, 0] = np.nan
    rewrite_volume(root, entry, "t1ce", images[0])
    rewrite_volume(root, entry, "flair", np.zeros((32, 32, 32), np.float32))
    rewrite_volume(root, entry, "seg", affine=shifted(-5.0, axis=1))
    _, problems = LoadBratsCased().inspect(resolve_entry(entry, root))
    assert [p.path.rsplit("_", 1)[-1] for p in problems] == ["t1ce.nii.gz", "flair.nii.gz", "seg.nii.gz"]


def test_grid_offset_counts_rotation_and_scale_across_the_volume():
    reference = np.eye(4)
    assert guards.grid_offset_mm(shifted(3.0, axis=1), reference, (10, 10, 10)) == pytest.approx(3.0)
    assert guards.grid_offset_mm(np.diag([1.01, 1, 1, 1]), reference, (101, 2, 2)) == pytest.approx(1.0)
    assert guards.geometry_problem("t1", np.full((4, 4), np.nan)).startswith("t1 has a non-finite affine")

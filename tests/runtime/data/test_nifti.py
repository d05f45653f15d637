import gzip

import nibabel as nib
import numpy as np
import pytest
import torch

from fedbrats.runtime.data.nifti import TILE, copy_voxels, gunzip, read_nifti


def test_gunzip_joins_every_member():
    assert gunzip(gzip.compress(b"left ") + gzip.compress(b"right")) == b"left right"


def test_a_gzipped_nifti_reads_in_its_stored_type_and_layout_with_its_affine(tmp_path):
    volume = np.random.default_rng(0).integers(-50, 900, (7, 6, 5), dtype=np.int16)
    affine = np.diag([-1.5, -1.5, 2.0, 1.0])
    path = tmp_path / "case_t1.nii.gz"
    nib.save(nib.Nifti1Image(volume, affine), path)
    image = read_nifti(str(path))
    assert image.shape == (1, 7, 6, 5) and image.dtype == torch.int16
    assert image.as_tensor()[0].stride(0) == 1  # NIfTI's layout: the first axis fastest
    np.testing.assert_array_equal(image.as_tensor()[0].numpy(), volume)
    np.testing.assert_allclose(image.affine.numpy(), affine)
    (tmp_path / "not.nii.gz").write_bytes(b"\x1f\x8b not gzip")
    assert read_nifti(str(tmp_path / "not.nii.gz")) is None


@pytest.mark.parametrize("shape", [(TILE * 2 + 5, 9, TILE + 3), (3, 4, 5)])
def test_copy_voxels_out_of_the_nifti_layout_keeps_every_voxel(shape):
    source = torch.from_numpy(np.asfortranarray(np.random.default_rng(1).integers(0, 5, shape, dtype=np.uint8)))
    target = copy_voxels(torch.empty(shape, dtype=torch.int16), source)
    assert target.is_contiguous() and torch.equal(target, source.to(torch.int16))


def test_a_scaled_nifti_reads_with_its_scaling_applied(tmp_path):
    values = np.random.default_rng(4).uniform(0.0, 45.0, (6, 5, 4))
    image = nib.Nifti1Image(values, np.eye(4))
    image.set_data_dtype(np.int16)  # stored as integers with a slope and an intercept in the header
    path = tmp_path / "case_t2.nii.gz"
    nib.save(image, path)
    slope = nib.load(path).dataobj.slope
    assert slope != 1
    read = read_nifti(str(path))
    assert read.dtype.is_floating_point
    np.testing.assert_allclose(read.as_tensor()[0].numpy(), values, atol=slope)

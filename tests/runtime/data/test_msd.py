"""Cases in the MSD Task01 layout: one 4D image (FLAIR, T1w, T1gd, T2w) and labels 0 to 3, read as BraTS cases."""

import json
import os

import nibabel as nib
import numpy as np
import pytest
import torch
from builders import LPS_1_5MM, TINY_TRAINING, tumour_case, write_case, write_fl_model, write_msd_case

from fedbrats.cli import main
from fedbrats.prepare.check_data import check_datalist
from fedbrats.runtime.constants import MODALITIES
from fedbrats.runtime.data.datalist import resolve_datalist, resolve_entry
from fedbrats.runtime.data.loaders import data_errors
from fedbrats.runtime.data.msd import to_brats_labels, to_msd_labels
from fedbrats.runtime.data.transforms import LoadBratsCased, eval_transforms
from fedbrats.runtime.errors import BratsDataError


def test_the_4d_image_is_read_in_the_models_channel_order(tmp_path):
    images, labels = tumour_case(seed=3)
    entry = write_msd_case(str(tmp_path), "BRATS_003", images=images, labels=labels)
    case = LoadBratsCased()(resolve_entry(entry, str(tmp_path)))
    assert case["image"].shape == (4, 32, 32, 32)
    for k, modality in enumerate(MODALITIES):
        np.testing.assert_array_equal(case["image"][k].numpy(), images[k], err_msg=modality)
    np.testing.assert_array_equal(case["label"][0].numpy(), labels)  # BraTS values 0, 1, 2, 4


def test_msd_labels_become_tc_wt_et(tmp_path, tiny_settings):
    images, _ = tumour_case()
    msd = np.zeros((32, 32, 32), np.uint8)
    msd[0, 0, 0], msd[0, 0, 1], msd[0, 0, 2] = 1, 2, 3
    entry = write_msd_case(str(tmp_path), "BRATS_L", images=images, labels=to_brats_labels(msd))
    label = eval_transforms(tiny_settings)(resolve_entry(entry, str(tmp_path)))["label"]
    assert label[:, 0, 0, 0].tolist() == [0, 1, 0]  # oedema: WT only
    assert label[:, 0, 0, 1].tolist() == [1, 1, 0]  # non-enhancing tumour: TC and WT
    assert label[:, 0, 0, 2].tolist() == [1, 1, 1]  # enhancing tumour: all three
    assert label[:, 5, 5, 5].tolist() == [0, 0, 0]


def test_a_case_gives_the_same_tensors_in_both_layouts(tmp_path, tiny_settings):
    images, labels = tumour_case(seed=5)
    settings = tiny_settings.replace(pixdim=1.5)
    brats = resolve_entry(
        write_case(str(tmp_path), "Case_5", images=images, labels=labels, affine=LPS_1_5MM), str(tmp_path)
    )
    msd = resolve_entry(
        write_msd_case(str(tmp_path), "Case_5", images=images, labels=labels, affine=LPS_1_5MM), str(tmp_path)
    )
    a, b = eval_transforms(settings)(brats), eval_transforms(settings)(msd)
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])
    assert b["label"].sum() > 0


def rewrite(path, volume=None, affine=None):
    old = nib.load(path)
    volume = np.asarray(old.dataobj) if volume is None else volume
    nib.save(nib.Nifti1Image(volume, old.affine if affine is None else affine), path)


def spoil(kind, root, entry, images, labels):
    image, label = os.path.join(root, entry["image"]), os.path.join(root, entry["label"])
    if kind == "3d":
        rewrite(image, images[0])
    elif kind == "label 4":
        volume = to_msd_labels(labels)
        volume[1, 1, 1] = 4
        rewrite(label, volume)
    elif kind == "label grid":
        shifted = np.eye(4)
        shifted[0, 3] = 1.0
        rewrite(label, affine=shifted)
    elif kind == "label shape":
        rewrite(label, to_msd_labels(labels)[:, :, :30])


@pytest.mark.parametrize(
    "kind, file, message",
    [
        ("nan", "image", r"channel 2 \(t1gd\) has 1 non-finite voxel\(s\) of 32768 \(1 NaN, 0 Inf\)"),
        ("constant", "image", r"channel 3 \(T2w\) is constant \(every voxel is 0\)"),
        ("3d", "image", r"expected a 4D image of 4 channels \(FLAIR, T1w, t1gd, T2w\), got shape \(32, 32, 32\)"),
        ("voxel size", "image", r"image has voxel size 10 x 10 x 10 mm"),
        ("label 4", "label", r"label values \[4\] outside \[0, 1, 2, 3\]"),
        ("label grid", "label", r"label is not on the voxel grid of image: its affine places voxels up to 1 mm away"),
        ("label shape", "label", r"label has shape \(32, 32, 30\), images have \(32, 32, 32\)"),
    ],
)
def test_bad_msd_cases_name_the_case_and_the_file(tmp_path, tiny_settings, kind, file, message):
    images, labels = tumour_case()
    if kind == "nan":
        images[MODALITIES.index("t1ce")][5, 5, 5] = np.nan
    if kind == "constant":
        images[MODALITIES.index("t2")][:] = 0
    affine = np.diag([10.0, 10.0, 10.0, 1.0]) if kind == "voxel size" else None
    root = str(tmp_path)
    entry = write_msd_case(root, "BRATS_007", images=images, labels=labels, affine=affine)
    spoil(kind, root, entry, images, labels)
    with pytest.raises(BratsDataError, match=message) as err, data_errors():
        eval_transforms(tiny_settings)(resolve_entry(entry, root))
    assert str(err.value).startswith(f"case BRATS_007, file {os.path.join(root, entry[file])}: ")


def write_datalist(root, entries, name="site.json"):
    path = os.path.join(root, name)
    with open(path, "w") as f:
        json.dump({"training": entries}, f)
    return path


@pytest.mark.parametrize(
    "change, message",
    [
        (
            {"image": "../elsewhere/BRATS_001.nii.gz"},
            "case BRATS_001, file ../elsewhere/BRATS_001.nii.gz: path escapes",
        ),
        ({"label": "labelsTr/BRATS_404.nii.gz"}, r"case BRATS_404, file .*labelsTr/BRATS_404.nii.gz: file not found"),
        ({"image": ["imagesTr/BRATS_001.nii.gz"]}, r"entry 0 of 'training' must be .* \(MSD Task01\)"),
        ({"format": "nifti"}, "entry 0 of 'training' has format 'nifti'; known: brats, msd"),
    ],
)
def test_bad_msd_datalist_entries(tmp_path, change, message):
    root = str(tmp_path)
    entry = write_msd_case(root, "BRATS_001")
    datalist = write_datalist(root, [{**entry, **change}])
    with pytest.raises(BratsDataError, match=message):
        resolve_datalist(datalist, "training", root)


def test_check_data_reads_msd_datalists(tmp_path):
    root = str(tmp_path)
    images, labels = tumour_case()
    images[0][3, 3, 3] = np.inf
    entries = [write_msd_case(root, "BRATS_001"), write_msd_case(root, "BRATS_002", images=images, labels=labels)]
    result = check_datalist(root, write_datalist(root, entries), ["training"], say=lambda line: None)
    assert result["cases"] == 2 and result["bad_cases"] == 1
    assert result["problems"] == [
        f"case BRATS_002, file {os.path.join(root, entries[1]['image'])}: channel 2 (t1gd) has 1 non-finite voxel(s) "
        "of 32768 (0 NaN, 1 Inf); a NaN or Inf in the input turns the model's weights into NaN"
    ]


def test_infer_writes_msd_labels_on_the_grid_of_the_4d_image_and_evaluate_reads_them(tmp_path, capsys):
    training = {**TINY_TRAINING, "pixdim": 2.0}
    model = write_fl_model(str(tmp_path / "job"), training)
    images, labels = tumour_case((36, 32, 28), seed=2)
    brats_root, msd_root = str(tmp_path / "brats"), str(tmp_path / "msd")
    brats = write_case(brats_root, "BRATS_002", images=images, labels=labels, affine=LPS_1_5MM)
    msd = write_msd_case(msd_root, "BRATS_002", images=images, labels=labels, affine=LPS_1_5MM)
    datalist = write_datalist(msd_root, [msd])
    common = [model, "--device", "cpu", "--threads", "1"]
    case_dir = os.path.join(brats_root, os.path.dirname(brats["label"]))
    assert main(["infer", *common, "--case-dir", case_dir, "--out", str(tmp_path / "brats_pred")]) == 0
    msd_args = ["--datalist", datalist, "--data-root", msd_root, "--split", "training"]
    assert main(["infer", *common, *msd_args, "--out", str(tmp_path / "msd_pred")]) == 0
    assert "label 3:" in capsys.readouterr().out
    from_brats = nib.load(str(tmp_path / "brats_pred" / "BRATS_002_seg.nii.gz"))
    from_msd = nib.load(str(tmp_path / "msd_pred" / "BRATS_002_seg.nii.gz"))
    image = nib.load(os.path.join(msd_root, msd["image"]))
    assert from_msd.shape == image.shape[:3] == (36, 32, 28)
    np.testing.assert_allclose(from_msd.affine, image.affine)
    brats_labels = np.asarray(from_brats.dataobj)
    assert set(np.unique(brats_labels)) - {0} and 4 in brats_labels
    np.testing.assert_array_equal(np.asarray(from_msd.dataobj), to_msd_labels(brats_labels))

    assert main(["evaluate", str(tmp_path / "msd_pred"), *msd_args]) == 0
    assert main(["evaluate", str(tmp_path / "brats_pred"), "--labels", brats_root]) == 0
    msd_scores = json.load(open(tmp_path / "msd_pred" / "summary.json"))["cases"]
    assert msd_scores == json.load(open(tmp_path / "brats_pred" / "summary.json"))["cases"]

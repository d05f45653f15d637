import gzip
import json
import os

import numpy as np
import pytest
import torch
from builders import modality_path, tumour_case, write_case

from fedbrats.runtime.data.datalist import resolve_entry
from fedbrats.runtime.data.loaders import data_errors, make_dataset, site_loader
from fedbrats.runtime.data.transforms import eval_transforms, train_transforms
from fedbrats.runtime.errors import BratsDataError


def test_label_conversion_to_tc_wt_et(tmp_path, tiny_settings):
    images, _ = tumour_case((32, 32, 32))
    labels = np.zeros((32, 32, 32), np.uint8)
    labels[0, 0, 0], labels[0, 0, 1], labels[0, 0, 2] = 1, 2, 4
    entry = write_case(str(tmp_path), "Case_L", images=images, labels=labels)
    out = eval_transforms(tiny_settings)(resolve_entry(entry, str(tmp_path)))
    label = out["label"]
    assert label.shape == (3, 32, 32, 32) and label.dtype == torch.float32
    assert label[:, 0, 0, 0].tolist() == [1, 1, 0]  # necrotic core: TC and WT
    assert label[:, 0, 0, 1].tolist() == [0, 1, 0]  # oedema: WT only
    assert label[:, 0, 0, 2].tolist() == [1, 1, 1]  # enhancing: all three
    assert label[:, 5, 5, 5].tolist() == [0, 0, 0]


def test_normalisation_is_per_channel_over_non_zero_voxels(tiny_site, tiny_settings):
    root, datalist = tiny_site
    entry = json.load(open(datalist))["training"][0]
    out = eval_transforms(tiny_settings)(resolve_entry(entry, root))
    image = out["image"]
    assert image.shape == (4, 32, 32, 32)
    for c in range(4):
        inside = image[c][image[c] != 0]
        assert abs(float(inside.mean())) < 1e-3 and abs(float(inside.std()) - 1) < 1e-2
    assert float(image[:, :2].abs().max()) == 0.0


def test_training_crop_flip_and_intensity_augmentation(tiny_site, tiny_settings):
    root, datalist = tiny_site
    settings = tiny_settings.replace(crop=(24, 16, 20))
    entry = resolve_entry(json.load(open(datalist))["training"][0], root)
    transform = train_transforms(settings)
    transform.set_random_state(0)
    a, b = transform(dict(entry)), transform(dict(entry))
    assert a["image"].shape == (4, 24, 16, 20) and a["label"].shape == (3, 24, 16, 20)
    assert not torch.equal(a["image"], b["image"])


def test_resampling_to_the_configured_spacing(tmp_path, tiny_settings):
    entry = write_case(str(tmp_path), "Case_S", shape=(32, 32, 32))
    out = eval_transforms(tiny_settings.replace(pixdim=2.0))(resolve_entry(entry, str(tmp_path)))
    assert out["image"].shape == (4, 16, 16, 16)
    assert set(torch.unique(out["label"]).tolist()) <= {0.0, 1.0}


def test_cached_dataset_reuses_preprocessing(tiny_site, tiny_settings):
    root, datalist = tiny_site
    loader = site_loader(datalist, root, "training", tiny_settings, train=True)
    assert len(loader.dataset.data.cache) == 2
    batch = next(iter(loader))
    assert batch["image"].shape == (1, 4, 32, 32, 32) and batch["case"][0].startswith("Case_")


def _site_with_bad_case(tmp_path, tiny_settings, corrupt):
    root = str(tmp_path)
    entry = write_case(root, "Case_Bad")
    corrupt(root, entry)
    return lambda: make_dataset([resolve_entry(entry, root)], tiny_settings, train=False)


def test_corrupt_nifti_names_case_and_file(tmp_path, tiny_settings):
    def corrupt(root, entry):
        path = modality_path(root, entry, "t2")
        with gzip.open(path, "wb") as f:
            f.write(b"this is not a nifti file")

    with pytest.raises(BratsDataError, match="cannot read NIfTI") as err:
        _site_with_bad_case(tmp_path, tiny_settings, corrupt)()
    assert "case Case_Bad" in str(err.value) and "Case_Bad_t2.nii.gz" in str(err.value)


def test_truncated_gzip_is_reported(tmp_path, tiny_settings):
    def corrupt(root, entry):
        path = modality_path(root, entry, "t1")
        data = open(path, "rb").read()
        open(path, "wb").write(data[: len(data) // 3])

    with pytest.raises(BratsDataError, match="Case_Bad_t1.nii.gz"):
        _site_with_bad_case(tmp_path, tiny_settings, corrupt)()


def test_modalities_of_different_shapes(tmp_path, tiny_settings):
    images, labels = tumour_case((32, 32, 32))
    images[3] = images[3][:, :, :30]
    entry = write_case(str(tmp_path), "Case_Shape", images=images, labels=labels)
    with pytest.raises(BratsDataError, match=r"flair has shape \(32, 32, 30\)") as err, data_errors():
        eval_transforms(tiny_settings)(resolve_entry(entry, str(tmp_path)))
    assert "Case_Shape_flair.nii.gz" in str(err.value)


def test_label_values_outside_brats(tmp_path, tiny_settings):
    images, labels = tumour_case((32, 32, 32))
    labels[0, 0, 0] = 3
    entry = write_case(str(tmp_path), "Case_Lab", images=images, labels=labels)
    with pytest.raises(BratsDataError, match=r"label values \[3\] outside \[0, 1, 2, 4\]") as err:
        make_dataset([resolve_entry(entry, str(tmp_path))], tiny_settings, train=False)
    assert "Case_Lab_seg.nii.gz" in str(err.value) and "case Case_Lab" in str(err.value)


def test_bad_case_is_reported_also_without_caching(tmp_path, tiny_settings):
    images, labels = tumour_case((32, 32, 32))
    labels[1, 1, 1] = 7
    entry = write_case(str(tmp_path), "Case_Lazy", images=images, labels=labels)
    settings = tiny_settings.replace(cache_rate=0.0)
    dataset = make_dataset([resolve_entry(entry, str(tmp_path))], settings, train=False)
    from fedbrats.runtime.engine import SegmentationEngine

    loader = torch.utils.data.DataLoader(dataset, batch_size=1)
    with pytest.raises(BratsDataError, match="Case_Lazy_seg.nii.gz"):
        SegmentationEngine(settings).validate(loader)
    assert os.path.isfile(os.path.join(str(tmp_path), entry["label"]))


def structured_case(root, name, seed, dtype, affine=None, shape=(48, 48, 48)):
    """A case whose background is not all zero: a skull-like shell and a gradient in one corner, holes of zeros."""
    images, labels = tumour_case(shape, seed=seed, radius=7)
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"))
    radius = np.sqrt(((grid - np.array(shape)[:, None, None, None] / 2) ** 2).sum(0))
    shell = (radius > 20) & (radius < 23)
    for k, image in enumerate(images):
        image[shell] = 300 + 20 * k + rng.normal(0, 5, int(shell.sum()))
        image[:8, :8, :] = np.arange(shape[2]) * (k + 1)
        image[rng.random(shape) < 0.05] = 0
    images = [np.round(image).astype(dtype) for image in images]
    return resolve_entry(write_case(root, name, images=images, labels=labels, affine=affine), root)


@pytest.mark.parametrize("sampling", ["random", "tumour"])
def test_training_crops_normalised_after_cropping_hold_the_voxels_of_the_whole_volume_path(
    tmp_path, tiny_settings, sampling
):
    from builders import LPS_1_5MM
    from monai.transforms import Compose

    from fedbrats.runtime.data.transforms import deterministic_transforms, random_transforms

    settings = tiny_settings.replace(crop=(32, 32, 32), crop_sampling=sampling)
    root = str(tmp_path)
    cases = [structured_case(root, "Case_I", 1, np.int16), structured_case(root, "Case_F", 2, np.float32, LPS_1_5MM)]
    before = Compose(deterministic_transforms(settings) + random_transforms(settings))
    now = train_transforms(settings)
    before.set_random_state(7)
    now.set_random_state(7)
    for case in cases:
        seen = []
        for _ in range(4):
            a, b = before(dict(case)), now(dict(case))
            a, b = (a[0], b[0]) if isinstance(a, list) else (a, b)
            assert b["image"].dtype == b["label"].dtype == torch.float32
            assert b["image"].shape == a["image"].shape == (4, 32, 32, 32) and b["label"].shape == (3, 32, 32, 32)
            assert torch.equal(a["label"], b["label"])
            torch.testing.assert_close(b["image"].as_tensor(), a["image"].as_tensor(), rtol=1e-5, atol=1e-5)
            seen.append(a["image"].as_tensor())
        assert not all(torch.equal(seen[0], other) for other in seen[1:])


def test_regions_written_straight_into_float32_are_monai_s():
    from monai.data import MetaTensor
    from monai.transforms import Compose

    from fedbrats.runtime.data.transforms import BratsRegionsd, label_regions

    label = MetaTensor(torch.from_numpy(np.random.default_rng(6).choice([0, 1, 2, 4], (1, 9, 8, 7)).astype(np.int16)))
    expected = Compose(label_regions())({"label": label})["label"]
    got = BratsRegionsd()({"label": label})["label"]
    assert isinstance(got, MetaTensor) and got.dtype == torch.float32 and torch.equal(got, expected)


@pytest.mark.parametrize(
    "dtype, stacked", [(np.int16, torch.int16), (np.uint8, torch.int16), (np.float32, torch.float32)]
)
def test_a_training_read_stacks_the_modalities_as_stored_integers_or_float32(tmp_path, dtype, stacked):
    from fedbrats.runtime.data.transforms import LoadBratsCased, ReadBratsCased

    case = structured_case(str(tmp_path), "Case_D", 3, dtype, shape=(20, 18, 16))
    read = ReadBratsCased()(dict(case))
    assert read["image"].dtype == stacked and read["label"].dtype == torch.int16
    assert read["image"].is_contiguous()
    loaded = LoadBratsCased()(dict(case))
    assert torch.equal(read["image"].as_tensor().float(), loaded["image"].as_tensor())
    assert torch.equal(read["label"].as_tensor().long(), loaded["label"].as_tensor().long())

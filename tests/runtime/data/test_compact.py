"""Compact cached cases: the brain's box in float16 and uint8, given back as the tensors of the uncached case."""

import numpy as np
import pytest
import torch
from builders import LPS_1_5MM, tumour_case, write_case, write_msd_case

from fedbrats.runtime.data.compact import COMPACT_KEY, CompactCased, RestoreCased, nonzero_box, tensor_bytes
from fedbrats.runtime.data.datalist import resolve_entry
from fedbrats.runtime.data.loaders import make_dataset
from fedbrats.runtime.data.transforms import after_cache_transforms, eval_transforms, train_transforms

BRAIN = (slice(5, 27), slice(3, 30), slice(7, 26))
"""Where the brain of the test case is: every modality is zero outside."""
FP16 = {"rtol": 2e-3, "atol": 2e-3}
"""float16 keeps 11 significant bits: normalised intensities of a few units move by about 1e-3."""


def brain_case(root, layout="brats", affine=None, seed=4):
    images, labels = tumour_case(seed=seed)
    outside = np.ones(labels.shape, bool)
    outside[BRAIN] = False
    images = [np.where(outside, 0, img).astype(np.float32) for img in images]
    labels = np.where(outside, 0, labels).astype(np.uint8)
    write = write_msd_case if layout == "msd" else write_case
    return resolve_entry(write(root, f"Case_{layout}", images=images, labels=labels, affine=affine), root)


@pytest.mark.parametrize(
    "layout, affine, pixdim",
    [("brats", None, 1.0), ("brats", LPS_1_5MM, 1.5), ("msd", LPS_1_5MM, 2.0), ("msd", None, 3.0)],
)
def test_a_compact_case_restores_to_the_uncached_tensors(tmp_path, tiny_settings, layout, affine, pixdim):
    settings = tiny_settings.replace(pixdim=pixdim)
    case = brain_case(str(tmp_path), layout, affine)
    reference = eval_transforms(settings)(dict(case))
    compact = CompactCased()(eval_transforms(settings)(dict(case)))
    assert compact["image"].dtype == torch.float16 and compact["label"].dtype == torch.uint8
    assert compact[COMPACT_KEY]["shape"] == list(reference["image"].shape[1:])
    assert tensor_bytes(compact) < 0.4 * tensor_bytes(reference)  # 2 + 1 bytes a voxel instead of 4 + 4, cropped
    restored = after_cache_transforms(settings, train=False)(compact)
    assert COMPACT_KEY not in restored
    for key in ("image", "label"):
        assert restored[key].dtype == torch.float32 and restored[key].shape == reference[key].shape, key
        np.testing.assert_allclose(restored[key].numpy(), reference[key].numpy(), **FP16, err_msg=key)
        np.testing.assert_allclose(restored[key].affine.numpy(), reference[key].affine.numpy(), atol=1e-9)
    assert torch.equal(restored["label"], reference["label"])
    assert reference["label"][2].sum() > 0  # enhancing tumour survives


def test_the_box_holds_every_non_zero_voxel_of_image_and_label(tmp_path, tiny_settings):
    reference = eval_transforms(tiny_settings)(brain_case(str(tmp_path)))
    start, stop = nonzero_box([reference["image"], reference["label"]])
    assert (start, stop) == ([b.start for b in BRAIN], [b.stop for b in BRAIN])
    inside = torch.zeros(reference["image"].shape[1:], dtype=torch.bool)
    inside[tuple(slice(a, b) for a, b in zip(start, stop))] = True
    assert float(reference["image"][:, ~inside].abs().sum()) == 0 and float(reference["label"][:, ~inside].sum()) == 0
    label = torch.zeros((3, 32, 32, 32))
    label[1, 0, 31, 0] = 1  # a tumour voxel outside the image's box still widens it
    assert nonzero_box([reference["image"], label]) == ([0, 3, 0], [27, 32, 26])


@pytest.mark.parametrize("sampling", ["random", "tumour"])
def test_training_crops_from_the_compact_cache_are_those_of_the_uncached_case(tmp_path, tiny_settings, sampling):
    settings = tiny_settings.replace(crop=(24, 16, 20), crop_sampling=sampling)
    case = brain_case(str(tmp_path), "brats", LPS_1_5MM)
    uncached, after = train_transforms(settings), after_cache_transforms(settings, train=True)
    compact = CompactCased()(eval_transforms(settings)(dict(case)))
    uncached.set_random_state(3)
    after.set_random_state(3)
    for _ in range(3):
        a, b = uncached(dict(case)), after(compact)
        a, b = (a[0], b[0]) if isinstance(a, list) else (a, b)
        for key in ("image", "label"):
            assert b[key].dtype == torch.float32 and b[key].shape == a[key].shape == (a[key].shape[0], 24, 16, 20)
            np.testing.assert_allclose(b[key].numpy(), a[key].numpy(), **FP16, err_msg=key)
    assert compact["image"].dtype == torch.float16  # the cache is left as it was


def test_cached_and_uncached_cases_give_the_same_tensors(tmp_path, tiny_settings):
    entries = [brain_case(str(tmp_path), seed=s) for s in (1, 2)]
    cached = make_dataset(entries, tiny_settings.replace(cache_rate=1.0), train=False)
    uncached = make_dataset(entries, tiny_settings.replace(cache_rate=0.0), train=False)
    assert len(cached.data.cache) == 2 and not uncached.data.cache
    for k, entry in enumerate(entries):
        a, b = cached[k], uncached[k]
        reference = eval_transforms(tiny_settings)(dict(entry))
        assert torch.equal(b["image"], reference["image"]) and b["image"].dtype == a["image"].dtype == torch.float32
        np.testing.assert_allclose(a["image"].numpy(), b["image"].numpy(), **FP16)
        assert torch.equal(a["label"], b["label"]) and a["image"].shape == b["image"].shape


def test_restore_leaves_a_case_without_a_box_alone():
    case = {"image": torch.ones((4, 3, 3, 3)), "label": torch.zeros((3, 3, 3, 3))}
    assert RestoreCased()(case)["image"] is case["image"]


def test_an_empty_case_keeps_its_whole_grid():
    case = {"image": torch.zeros((4, 5, 6, 7)), "label": torch.zeros((3, 5, 6, 7))}
    compact = CompactCased()(case)
    assert compact["image"].shape == (4, 5, 6, 7) and compact[COMPACT_KEY] == {"shape": [5, 6, 7], "start": [0, 0, 0]}

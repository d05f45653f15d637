import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, RandScaleIntensityd, RandShiftIntensityd

from fedbrats.runtime.data.zscore import (
    DrawnScaleIntensityd,
    DrawnShiftIntensityd,
    NonzeroNormalized,
    NonzeroStatsd,
    NormalizeByStatsd,
    nonzero_stats,
)


def test_fast_normalisation_matches_monai():
    from monai.data import MetaTensor
    from monai.transforms import NormalizeIntensityd

    rng = np.random.default_rng(0)
    image = rng.normal(500, 120, (5, 40, 36, 30)).astype(np.float32)
    image[:, :8] = 0  # background
    image[2] = 0  # a channel without brain
    image[3][image[3] != 0] = 250.0  # a constant channel
    reference = NormalizeIntensityd(keys="image", nonzero=True, channel_wise=True)(
        {"image": MetaTensor(torch.from_numpy(image.copy()))}
    )["image"]
    fast = NonzeroNormalized(keys="image")({"image": MetaTensor(torch.from_numpy(image.copy()))})["image"]
    assert isinstance(fast, MetaTensor) and fast.dtype == torch.float32
    assert torch.allclose(fast.as_tensor(), reference.as_tensor(), atol=1e-5)
    assert float(fast[:, :8].abs().max()) == 0.0 and float(fast[2].abs().max()) == 0.0


def test_nonzero_stats_are_the_mean_and_deviation_of_the_nonzero_voxels_within_float32_rounding():
    rng = np.random.default_rng(2)
    channel = (600 + 150 * rng.standard_normal((40, 30, 20))).astype(np.float32)
    channel[rng.random(channel.shape) < 0.6] = 0
    channel[:3] = 0  # whole parts without a voxel
    values = channel[channel != 0].astype(np.float64)
    mean, std = nonzero_stats(torch.from_numpy(channel))
    assert mean == pytest.approx(values.mean(), rel=1e-6) and std == pytest.approx(values.std(), rel=1e-6)
    assert nonzero_stats(torch.zeros(4, 4, 4)) == (0.0, 1.0)
    assert nonzero_stats(torch.full((4, 4, 4), 3.0)) == (3.0, 1.0)


def test_nonzero_stats_of_an_integer_channel_are_exact():
    rng = np.random.default_rng(3)
    channel = rng.integers(0, 32767, (70, 60, 50), dtype=np.int16)
    channel[rng.random(channel.shape) < 0.5] = 0
    values = channel[channel != 0].astype(np.float64)
    mean, std = nonzero_stats(torch.from_numpy(channel))
    assert mean == pytest.approx(values.mean(), rel=1e-12) and std == pytest.approx(values.std(), rel=1e-12)
    assert nonzero_stats(torch.zeros(4, 4, 4, dtype=torch.int16)) == (0.0, 1.0)
    assert nonzero_stats(torch.full((4, 4, 4), 7, dtype=torch.int16)) == (7.0, 1.0)


@pytest.mark.parametrize("dtype", [torch.int16, torch.float32])
def test_a_crop_normalised_and_augmented_in_one_pass_holds_monai_s_voxels_from_the_same_draws(dtype):
    rng = np.random.default_rng(4)
    volume = torch.from_numpy(rng.integers(0, 3000, (4, 30, 20, 10)).astype(np.int16)).to(dtype)
    volume[:, :5] = 0
    volume[1, volume[1] < 1500] = 0
    crop = (slice(None), slice(2, 24), slice(3, 17), slice(None))
    reference = Compose(
        [
            NonzeroNormalized(keys="image"),
            RandScaleIntensityd(keys="image", factors=0.1, prob=1.0),
            RandShiftIntensityd(keys="image", offsets=0.1, prob=1.0),
        ]
    )
    one_pass = Compose(
        [
            DrawnScaleIntensityd(keys="image", factors=0.1, prob=1.0),
            DrawnShiftIntensityd(keys="image", offsets=0.1, prob=1.0),
            NormalizeByStatsd(),
        ]
    )
    reference.set_random_state(5)
    one_pass.set_random_state(5)
    for _ in range(3):
        expected = reference({"image": MetaTensor(volume.float())})["image"][crop]
        stats = NonzeroStatsd()({"image": MetaTensor(volume)})
        got = one_pass({**stats, "image": stats["image"][crop]})
        assert set(got) == {"image"} and got["image"].dtype == torch.float32
        torch.testing.assert_close(got["image"].as_tensor(), expected.as_tensor(), rtol=1e-5, atol=1e-5)

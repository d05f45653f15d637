"""Scanner profiles: each effect on small arrays, and whole cases under several profiles."""

import numpy as np
import pytest

from fedbrats.prepare.phantom.case import generate_case
from fedbrats.prepare.phantom.scanner import (
    REFERENCE,
    SCANNER_PROFILES,
    ScannerProfile,
    acquire,
    bias_field,
    field_of_view,
    gain_offset,
    gamma_contrast,
    profile_rng,
    rician_noise,
    scanner_profile,
    thick_slices,
)
from fedbrats.runtime.constants import LABEL_SUFFIX, MODALITIES

SEED = (5, 1, 1)
CUT = ScannerProfile("cut", "a field of view that ends half-way up the tumour of SEED", fov_cut_mm=(0.0, 66.0))


@pytest.fixture(scope="module")
def cases():
    """One HGG case (reduced size) under the default and a few named profiles."""
    out = {"default": generate_case("HGG", "reduced", SEED)[0]}
    for name in (REFERENCE, "gain-bias", "small-fov", "thick-slice", CUT):
        out[getattr(name, "name", name)] = generate_case("HGG", "reduced", SEED, name)[0]
    return out


def test_the_reference_profile_is_the_generator_as_it_was(cases):
    assert all(np.array_equal(cases["default"][k], cases[REFERENCE][k]) for k in MODALITIES + (LABEL_SUFFIX,))
    reference = SCANNER_PROFILES[REFERENCE]
    assert not (reference.gain or reference.offset or reference.gamma or reference.slice_mm or reference.bias_sd)
    assert reference.noise == 1.0 and reference.fov_cut_mm == (0.0, 0.0)
    assert len(SCANNER_PROFILES) >= 6 and all(name == p.name for name, p in SCANNER_PROFILES.items())


def test_a_profile_keeps_the_anatomy_and_changes_the_images(cases):
    for name in ("gain-bias", "thick-slice"):
        assert np.array_equal(cases[name][LABEL_SUFFIX], cases[REFERENCE][LABEL_SUFFIX]), name
        assert not np.array_equal(cases[name]["flair"], cases[REFERENCE]["flair"]), name
    assert not np.array_equal(cases["gain-bias"]["flair"], cases["thick-slice"]["flair"])
    # thick-slice leaves T1c, a 3D acquisition, as it is
    assert np.array_equal(cases["thick-slice"]["t1ce"], cases[REFERENCE]["t1ce"])
    # gains 1.35 on T1c and 0.70 on FLAIR under one bias field: T1c gains about 1.35 / 0.70 on FLAIR (offsets aside)
    brain = cases[REFERENCE]["t1ce"] > 0
    change = {m: cases["gain-bias"][m][brain].mean() / cases[REFERENCE][m][brain].mean() for m in ("t1ce", "flair")}
    assert 1.6 < change["t1ce"] / change["flair"] < 2.1


def test_a_profile_is_deterministic_per_seed(cases):
    again = generate_case("HGG", "reduced", SEED, "gain-bias")[0]
    assert all(np.array_equal(again[k], cases["gain-bias"][k]) for k in again)


def test_small_fov_zeroes_image_and_label_outside_and_nothing_else(cases):
    small, reference = cases["small-fov"], cases[REFERENCE]
    low, high = 12, 6  # 24 and 12 mm at 2 mm
    for k in MODALITIES + (LABEL_SUFFIX,):
        assert not small[k][..., :low].any() and not small[k][..., -high:].any(), k
        assert np.array_equal(small[k][..., low:-high], reference[k][..., low:-high]), k
    assert all(reference[m][..., :low].any() for m in MODALITIES)  # there was brain to cut
    # a field of view through the tumour: its label is cut with the image
    cut = cases["cut"]
    assert reference[LABEL_SUFFIX][..., 45:].any() and reference[LABEL_SUFFIX][..., :45].any()
    assert not cut[LABEL_SUFFIX][..., 45:].any() and not cut["flair"][..., 45:].any()  # 66 mm: 33 slices of 78
    assert np.array_equal(cut[LABEL_SUFFIX][..., :45], reference[LABEL_SUFFIX][..., :45])


def test_gain_offset_and_gamma():
    image = np.full((4, 4, 4), 0.5)
    assert np.allclose(gain_offset(image, 1.2, 0.1).mean(), 1.2 * (0.5 + 0.1))
    tissues = np.array([0.5, 1.0, 1.5])
    assert np.allclose(gamma_contrast(tissues, 2.0), [0.25, 1.0, 2.25])  # white matter (1) stays, contrast grows
    assert np.allclose(gamma_contrast(tissues, 0.5), np.sqrt(tissues)) and gamma_contrast(-tissues, 2.0).max() == 0


def test_thick_slices_blur_through_plane_only():
    rng = np.random.default_rng(0)
    in_plane = rng.standard_normal((12, 10, 1))
    through_plane = rng.standard_normal((1, 1, 40))
    image = in_plane + through_plane
    out = thick_slices(image, 5.0, 1.0)
    assert out.shape == image.shape
    assert np.allclose(np.diff(out, axis=0), np.diff(image, axis=0))  # in-plane detail kept
    assert np.allclose(np.diff(out, axis=1), np.diff(image, axis=1))
    energy = lambda v: float((np.diff(v, axis=2) ** 2).mean())  # noqa: E731
    assert energy(out) < 0.1 * energy(image)
    assert np.allclose(thick_slices(in_plane.repeat(20, axis=2), 5.0, 1.0), in_plane)  # nothing to blur along z
    assert thick_slices(image, 2.0, 2.0) is image  # slices one voxel thick
    # thick-slice at 2 mm voxels: 2.5 voxels a slice, still blurred, ends of the stack kept in range
    assert energy(thick_slices(image, 5.0, 2.0)) < 0.5 * energy(image)


def test_field_of_view():
    volume = np.ones((3, 3, 20), np.int16)
    cut = field_of_view(volume, (4.0, 2.0), 2.0)
    assert cut[..., :2].sum() == 0 and cut[..., -1].sum() == 0 and (cut[..., 2:-1] == 1).all()
    assert volume.all() and field_of_view(volume, (0.0, 0.0), 1.0) is volume


def test_noise_raises_the_spread_of_a_uniform_region():
    image = np.ones((24, 24, 24))
    spread = {}
    for name in (REFERENCE, "noisy"):
        out = acquire(image, "flair", SCANNER_PROFILES[name], 2.0, 0.03, np.random.default_rng(1))
        spread[name] = out.std()
    assert 0.02 < spread[REFERENCE] < 0.04 and 2.5 < spread["noisy"] / spread[REFERENCE] < 3.5
    once, twice = (rician_noise(image, 0.03, np.random.default_rng(1)) for _ in range(2))
    assert np.array_equal(once, twice) and not np.array_equal(once, rician_noise(image, 0.03, profile_rng((1,), "x")))


def test_bias_field_and_profile_random_numbers():
    a = bias_field((16, 16, 12), profile_rng((1, 2, 3), "gain-bias"), 0.2)
    b = bias_field((16, 16, 12), profile_rng((1, 2, 3), "gain-bias"), 0.2)
    c = bias_field((16, 16, 12), profile_rng((1, 2, 3), "clinical-1.5t"), 0.2)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert (a > 0).all() and 0.1 < np.log(a).std() < 0.3


def test_an_unknown_profile_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="unknown scanner profile 'mri'; expected one of reference, gain-bias"):
        scanner_profile("mri")
    assert scanner_profile(SCANNER_PROFILES["noisy"]) is SCANNER_PROFILES["noisy"]


def test_the_picture_of_the_profiles(tmp_path):
    from fedbrats.prepare.profiles import draw_profiles

    path = draw_profiles(str(tmp_path / "profiles.png"), profiles=["noisy", "small-fov"])
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"

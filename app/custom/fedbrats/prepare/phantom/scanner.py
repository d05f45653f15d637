"""Acquisition profiles: the systematic differences of a site's scanner and protocol, on top of each case's own.

A profile is applied to every case of a site. It never changes a case's anatomy, tumour or per-case draws (intensity
scale, noise level, mild bias field): its own random numbers come from a generator seeded by the case's seed and the
profile's name, so that one case seen under two profiles is the same brain. ``reference`` changes nothing.

Gain and offset vanish under the per-case z-score the model's input goes through; the bias field, the contrast, the
noise, the slice thickness and the field of view do not.
"""

import zlib
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence, Tuple, Union

import numpy as np

FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))
REFERENCE = "reference"


@dataclass(frozen=True)
class ScannerProfile:
    """A site's acquisition, named: each field's neutral value leaves the reference generator's output as it is.

    ``gain`` and ``offset`` per modality scale the stored intensity and add to it (the offset in units of the
    case's white-matter intensity); ``gamma`` per modality raises the noise-free image (white matter 1) to a power,
    which changes the contrast between tissues; ``bias_sd`` is the log-scale standard deviation of a smooth receive
    field shared by the case's four modalities, over ``bias_cells`` cells across the grid; ``noise`` multiplies the
    case's Rician noise level; ``slice_mm`` per modality acquires it in axial slices of that thickness, resampled
    back to the grid; ``fov_cut_mm`` (inferior, superior) leaves that much of the grid out of the field of view, where
    the image and the label are zero.
    """

    name: str
    description: str
    gain: Mapping[str, float] = field(default_factory=dict)
    offset: Mapping[str, float] = field(default_factory=dict)
    gamma: Mapping[str, float] = field(default_factory=dict)
    bias_sd: float = 0.0
    bias_cells: int = 2
    noise: float = 1.0
    slice_mm: Mapping[str, float] = field(default_factory=dict)
    fov_cut_mm: Tuple[float, float] = (0.0, 0.0)


_PROFILES = (
    ScannerProfile(REFERENCE, "the generator's own appearance (a 3 T research protocol): no change"),
    ScannerProfile(
        "gain-bias",
        "another vendor's intensity scaling and an uncorrected multi-channel head coil: a gain and an offset per "
        "modality, a strong smooth bias field",
        gain={"t1ce": 1.35, "t1": 0.80, "t2": 1.20, "flair": 0.70},
        offset={"t1ce": 0.05, "t1": 0.10, "t2": 0.08, "flair": 0.12},
        bias_sd=0.20,
    ),
    ScannerProfile(
        "noisy",
        "a low-field (about 1 T) scanner: the signal-to-noise ratio falls about in proportion to the field strength",
        noise=3.0,
    ),
    ScannerProfile(
        "contrast",
        "other sequence timings (TR, TE, TI): flatter T1c and T2 contrast, stronger T1 and FLAIR contrast",
        gamma={"t1ce": 0.80, "t1": 1.30, "t2": 0.85, "flair": 1.25},
    ),
    ScannerProfile(
        "thick-slice",
        "a clinical 2D protocol: T1, T2 and FLAIR in 5 mm axial slices, T1c a 3D 1 mm acquisition",
        slice_mm={"t1": 5.0, "t2": 5.0, "flair": 5.0},
    ),
    ScannerProfile(
        "small-fov",
        "an axial stack that misses the skull base and the vertex: 24 mm inferior and 12 mm superior out of the "
        "field of view, image and label zero there",
        fov_cut_mm=(24.0, 12.0),
    ),
    ScannerProfile(
        "clinical-1.5t",
        "a 1.5 T community hospital: more noise, 4 mm slices for T1, T2 and FLAIR, a mild bias field, its own "
        "scaling and slightly other contrast",
        gain={"t1ce": 0.85, "t1": 1.15, "t2": 0.90, "flair": 1.20},
        offset={"t1": 0.05, "flair": 0.05},
        gamma={"t1": 0.90, "flair": 1.10},
        bias_sd=0.10,
        noise=1.8,
        slice_mm={"t1": 4.0, "t2": 4.0, "flair": 4.0},
    ),
)
SCANNER_PROFILES = {p.name: p for p in _PROFILES}
"""Named acquisition profiles; ``reference`` is the default of every site."""


def scanner_profile(profile: Union[str, ScannerProfile]) -> ScannerProfile:
    """The profile of a name in :data:`SCANNER_PROFILES`; a :class:`ScannerProfile` is returned as it is."""
    if isinstance(profile, ScannerProfile):
        return profile
    if profile not in SCANNER_PROFILES:
        raise ValueError(f"unknown scanner profile {profile!r}; expected one of {', '.join(SCANNER_PROFILES)}")
    return SCANNER_PROFILES[profile]


def profile_rng(seed: Sequence[int], name: str) -> np.random.Generator:
    """The random numbers of a profile for one case: seeded by the case's seed and the profile's name, apart from
    the case's own generator."""
    return np.random.default_rng(list(seed) + [zlib.crc32(name.encode())])


def gamma_contrast(image: np.ndarray, gamma: float) -> np.ndarray:
    """``image ** gamma`` of an image with white matter at 1: below 1 flattens the contrast, above 1 strengthens it."""
    return np.maximum(image, 0) ** gamma


def bias_field(shape: Sequence[int], rng: np.random.Generator, sd: float, cells: int = 2) -> np.ndarray:
    """A smooth multiplicative field, ``exp`` of a smooth random field of log-scale standard deviation ``sd``."""
    from fedbrats.prepare.phantom.anatomy import smooth_field

    return np.exp(smooth_field(shape, rng, cells=cells, sd=sd))


def rician_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """The magnitude of ``image`` plus complex Gaussian noise of standard deviation ``sigma`` per channel."""
    shape = image.shape
    return np.hypot(image + sigma * rng.standard_normal(shape), sigma * rng.standard_normal(shape))


def _sample(volume: np.ndarray, positions: np.ndarray, axis: int) -> np.ndarray:
    """Linear interpolation of ``volume`` at fractional indices ``positions`` along ``axis`` (clamped to its ends)."""
    n = volume.shape[axis]
    positions = np.clip(positions, 0, n - 1)
    low = np.minimum(np.floor(positions).astype(int), max(n - 2, 0))
    weight = positions - low
    high = np.minimum(low + 1, n - 1)
    shape = [1] * volume.ndim
    shape[axis] = len(positions)
    weight = weight.reshape(shape)
    return (1 - weight) * np.take(volume, low, axis=axis) + weight * np.take(volume, high, axis=axis)


def thick_slices(image: np.ndarray, slice_mm: float, voxel_mm: float, axis: int = 2) -> np.ndarray:
    """``image`` acquired in slices ``slice_mm`` thick along ``axis`` and resampled back to its grid: a Gaussian slice
    profile of that full width at half maximum, one slice every ``slice_mm`` centred on the grid, then linear
    interpolation between slices. A slice no thicker than a voxel leaves the image as it is."""
    from scipy import ndimage

    step = slice_mm / voxel_mm
    if step <= 1:
        return image
    n = image.shape[axis]
    blurred = ndimage.gaussian_filter1d(image, step / FWHM_PER_SIGMA, axis=axis, mode="nearest")
    first = ((n - 1) % step) / 2
    centres = np.arange(first, n - 1 + 1e-6, step)
    stack = _sample(blurred, centres, axis)
    return _sample(stack, (np.arange(n) - first) / step, axis)


def field_of_view(volume: np.ndarray, cut_mm: Tuple[float, float], voxel_mm: float, axis: int = 2) -> np.ndarray:
    """``volume`` with the slices ``cut_mm`` (first, last: inferior, superior on the BraTS grid) from its ends set to
    zero: outside the field of view there is neither image nor label."""
    low, high = (int(np.floor(mm / voxel_mm + 0.5)) for mm in cut_mm)
    if not low and not high:
        return volume
    out = volume.copy()
    index = [slice(None)] * volume.ndim
    index[axis] = slice(0, low)
    out[tuple(index)] = 0
    index[axis] = slice(volume.shape[axis] - high, None)
    if high:
        out[tuple(index)] = 0
    return out


def gain_offset(image: np.ndarray, gain: float, offset: float) -> np.ndarray:
    """``gain * (image + offset)``, the offset in the units of ``image`` (white matter about 1)."""
    return gain * (image + offset)


def acquire(
    image: np.ndarray,
    modality: str,
    profile: ScannerProfile,
    voxel_mm: float,
    sigma: float,
    rng: np.random.Generator,
    bias: Optional[np.ndarray] = None,
) -> np.ndarray:
    """The blurred, noise-free ``image`` of ``modality`` (white matter about 1) through the acquisition: the profile's
    bias field, Rician noise of ``sigma`` times the profile's factor (drawn from ``rng``, the case's generator),
    slice thickness, gain and offset."""
    if bias is not None:
        image = image * bias
    noisy = rician_noise(image, sigma * profile.noise, rng)
    if modality in profile.slice_mm:
        noisy = thick_slices(noisy, profile.slice_mm[modality], voxel_mm)
    if modality in profile.gain or modality in profile.offset:
        noisy = gain_offset(noisy, profile.gain.get(modality, 1.0), profile.offset.get(modality, 0.0))
    return noisy

"""``fedbrats profiles``: one picture of the scanner profiles. The same synthetic case (same seed, so the same anatomy
and tumour) under each profile, a row per profile: an axial slice through the tumour of each modality and a sagittal
FLAIR slice, which shows what the slice thickness and the field of view do along the head."""

import argparse
from typing import Optional, Sequence

import numpy as np

from fedbrats.plots import DPI, pyplot, save
from fedbrats.prepare.phantom.anatomy import SIZES
from fedbrats.prepare.phantom.case import generate_case
from fedbrats.prepare.phantom.scanner import REFERENCE, SCANNER_PROFILES
from fedbrats.runtime.constants import GRADES, LABEL_SUFFIX, MODALITIES

TITLES = {"t1ce": "T1c", "t1": "T1", "t2": "T2", "flair": "FLAIR"}


def _tumour_slice(labels: np.ndarray, axis: int) -> int:
    """The slice along ``axis`` with the most tumour voxels."""
    others = tuple(a for a in range(labels.ndim) if a != axis)
    return int(np.argmax((labels > 0).sum(axis=others)))


def draw_profiles(
    path: str,
    size: str = "reduced",
    seed: int = 0,
    grade: str = "HGG",
    profiles: Optional[Sequence[str]] = None,
) -> str:
    """Draw the case of seed ``(seed, 1, 1)`` under each of ``profiles`` (default: every profile) to ``path`` (PNG).
    Each modality is shown in one grey-level window in every row (from zero to 1.4 times the 99th percentile of its
    reference image), so that gains, offsets and bias fields show; the sagittal column outlines the tumour's label.
    Returns ``path``."""
    names = list(profiles or SCANNER_PROFILES)
    cases = {name: generate_case(grade, size, (seed, 1, 1), name)[0] for name in dict.fromkeys([REFERENCE] + names)}
    reference = cases[REFERENCE]
    z = _tumour_slice(reference[LABEL_SUFFIX], 2)
    x = _tumour_slice(reference[LABEL_SUFFIX], 0)
    window = {m: 1.4 * float(np.percentile(reference[m][reference[m] > 0], 99)) for m in MODALITIES}
    plt = pyplot()
    columns = len(MODALITIES) + 1
    fig, axes = plt.subplots(len(names), columns, figsize=(1.6 * columns, 1.6 * len(names)), dpi=DPI, squeeze=False)
    for row, name in zip(axes, names):
        volumes = cases[name]
        for ax, m in zip(row, MODALITIES):
            ax.imshow(volumes[m][:, :, z].T, cmap="gray", origin="lower", vmin=0, vmax=window[m])
        sagittal, label = row[-1], volumes[LABEL_SUFFIX][x] > 0
        sagittal.imshow(volumes["flair"][x].T, cmap="gray", origin="lower", vmin=0, vmax=window["flair"])
        if label.any():
            sagittal.contour(label.T, levels=[0.5], colors="tab:red", linewidths=0.6)
        row[0].set_ylabel(name, fontsize=8)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    for ax, title in zip(axes[0], [f"{TITLES[m]} axial" for m in MODALITIES] + ["FLAIR sagittal, label"]):
        ax.set_title(title, fontsize=8)
    fig.suptitle(f"One {grade} case (seed {seed}, {size} size) under each scanner profile", fontsize=10)
    return save(fig, path)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="docs/scanner_profiles.png", help="PNG to write")
    parser.add_argument("--size", choices=sorted(SIZES), default="reduced")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--grade", choices=GRADES, default=GRADES[0])
    parser.add_argument("--profiles", nargs="+", choices=sorted(SCANNER_PROFILES), help="default: every profile")


def run(args: argparse.Namespace) -> None:
    path = draw_profiles(args.out, args.size, args.seed, args.grade, args.profiles)
    print(f"[profiles] one {args.grade} case under {len(args.profiles or SCANNER_PROFILES)} scanner profiles: {path}")

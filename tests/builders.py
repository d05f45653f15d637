"""Small builders of BraTS-layout and MSD-layout cases and datalists for tests."""

import json
import os

import nibabel as nib
import numpy as np

from fedbrats.runtime.constants import BRATS_FORMAT, LABEL_SUFFIX, MODALITIES, MSD_CHANNELS, MSD_FORMAT
from fedbrats.runtime.data.datalist import case_files
from fedbrats.runtime.data.msd import msd_files, to_msd_labels


def tumour_case(shape=(32, 32, 32), seed=0, radius=6):
    """Four bright-lesion modalities and a BraTS label map with all three tumour labels."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"))
    centre = np.array(shape) // 2 + rng.integers(-3, 4, 3)
    r = np.sqrt(((grid - centre[:, None, None, None]) ** 2).sum(0))
    labels = np.zeros(shape, np.uint8)
    labels[r < radius + 3] = 2
    labels[r < radius] = 4
    labels[r < radius - 2] = 1
    brain = np.ones(shape, bool)
    brain[:2] = brain[-2:] = False
    images = []
    for k in range(len(MODALITIES)):
        img = 100 + 10 * rng.standard_normal(shape) + 80 * (labels > 0) + 40 * k * (labels == 4)
        images.append(np.where(brain, img, 0).astype(np.float32))
    return images, labels


LPS_1_5MM = np.array([[-1.5, 0, 0, 40.0], [0, 0, 1.5, -20.0], [0, -1.5, 0, 30.0], [0, 0, 0, 1]])
"""A non-RAS grid of 1.5 mm voxels: axes flipped (L, P) and the last two swapped, origin off-centre."""


def write_case(root, case_id, grade="HGG", shape=(32, 32, 32), seed=0, images=None, labels=None, affine=None):
    """Write one case in the BraTS 2018 layout (identity affine by default); returns its datalist entry."""
    if images is None:
        images, labels = tumour_case(shape, seed)
    entry = case_files(case_id, grade)
    affine = np.eye(4) if affine is None else affine
    for rel, volume in zip(entry["image"] + [entry["label"]], list(images) + [labels]):
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        nib.save(nib.Nifti1Image(np.asarray(volume), affine), path)
    return entry


def write_msd_case(root, case_id, shape=(32, 32, 32), seed=0, images=None, labels=None, affine=None):
    """Write one case in the MSD Task01 layout: a 4D image (FLAIR, T1w, T1gd, T2w) and MSD labels 0 to 3, from
    modalities in the model's order and BraTS labels (those of :func:`tumour_case` by default); returns its entry."""
    if images is None:
        images, labels = tumour_case(shape, seed)
    entry = msd_files(case_id)
    affine = np.eye(4) if affine is None else affine
    image = np.stack([images[MODALITIES.index(m)] for m in MSD_CHANNELS], axis=-1)
    for rel, volume in ((entry["image"], image), (entry["label"], to_msd_labels(np.asarray(labels)))):
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        nib.save(nib.Nifti1Image(np.asarray(volume), affine), path)
    return entry


def write_site(root, n_train=2, n_val=1, n_test=1, shape=(32, 32, 32), name="site.json", layout=BRATS_FORMAT, seed=0):
    """A tiny site: cases under ``root`` (BraTS or MSD ``layout``) and a datalist; returns the datalist path. The
    cases are seeded ``seed + 1``, ``seed + 2``, ...: sites of other seeds hold other cases."""
    write = write_msd_case if layout == MSD_FORMAT else write_case
    splits = {}
    for split, n in (("training", n_train), ("validation", n_val), ("testing", n_test)):
        splits[split] = []
        for _ in range(n):
            seed += 1
            splits[split].append(write(root, f"Case_{seed:03d}", shape=shape, seed=seed))
    path = os.path.join(root, name)
    with open(path, "w") as f:
        json.dump(splits, f)
    return path


def modality_path(root, entry, modality):
    return os.path.join(
        root, entry["image"][MODALITIES.index(modality)] if modality != LABEL_SUFFIX else entry["label"]
    )


def rewrite_volume(root, entry, modality, volume=None, affine=None):
    """Rewrite one file (``modality`` or ``seg``) of a written case with another array and/or affine.

    An affine that a NIfTI qform cannot hold (a zero voxel size) is written as the header's sform only.
    """
    path = modality_path(root, entry, modality)
    old = nib.load(path)
    data = np.asarray(old.dataobj) if volume is None else np.asarray(volume)
    affine = old.affine if affine is None else np.asarray(affine, dtype=np.float64)
    if abs(np.linalg.det(affine[:3, :3])) > 0:
        img = nib.Nifti1Image(data, affine)
    else:
        img = nib.Nifti1Image(data, None)
        img.header.set_sform(affine, code=1)
    nib.save(img, path)
    return path


def shifted(mm, axis=0, affine=None):
    """``affine`` (identity by default) moved by ``mm`` millimetres along ``axis``."""
    out = np.eye(4) if affine is None else np.array(affine, dtype=np.float64)
    out[axis, 3] += mm
    return out


TINY_TRAINING = {
    "crop": [32, 32, 32],
    "sw_roi": [32, 32, 32],
    "pixdim": 1.0,
    "init_filters": 8,
    "batch_size": 1,
    "local_steps": 2,
    "num_threads": 1,
}
"""Training of the tests' FLARE jobs: two steps of a tiny model per round."""


def as_flags(training):
    """Command-line flags of training settings, e.g. ``{"crop": [32, 32, 32]}`` -> ``--crop 32 32 32``."""
    flags = []
    for name, value in training.items():
        flags += [f"--{name.replace('_', '-')}"] + [str(v) for v in (value if isinstance(value, list) else [value])]
    return flags


TINY_FLAGS = as_flags(TINY_TRAINING)


def write_fl_model(folder, training, name="FL_global_model.pt", seed=0, final_logits=None):
    """An untrained model of ``training`` saved as FLARE's persistor does, in ``folder/app_server`` with the
    job config FLARE keeps beside it; returns the model's path. ``final_logits`` (TC, WT, ET): the model's last
    convolution set to give these logits at every voxel, whatever the input."""
    import torch

    from fedbrats.runtime.model import build_model
    from fedbrats.runtime.settings import TrainSettings

    torch.manual_seed(seed)
    settings = TrainSettings.from_dict(training)
    app = os.path.join(folder, "app_server")
    os.makedirs(os.path.join(app, "config"), exist_ok=True)
    executor = {"path": "fedbrats.runtime.fl.executor.BratsExecutor", "args": {"training": settings.to_dict()}}
    with open(os.path.join(app, "config", "config_fed_client.json"), "w") as f:
        json.dump({"format_version": 2, "executors": [{"tasks": ["train"], "executor": executor}]}, f)
    path = os.path.join(app, name)
    state = build_model(settings).state_dict()
    if final_logits is not None:
        state["conv_final.2.conv.weight"].zero_()
        state["conv_final.2.conv.bias"].copy_(torch.tensor(final_logits, dtype=torch.float32))
    torch.save({"model": state, "train_conf": {"train": {"model": "x"}}}, path)
    return path

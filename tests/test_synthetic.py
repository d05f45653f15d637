import json
import os

import nibabel as nib
import numpy as np
import pytest

from fedbrats.constants import MODALITIES
from fedbrats.datalist import resolve_datalist
from fedbrats.tools.synthetic.generator import generate_case, split_sizes, write_sites


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("synthetic"))
    return root, write_sites(root, ["site-1", "site-2"], 3, "reduced", seed=7, workers=2)


def test_layout_naming_and_datalists(synthetic_root):
    root, paths = synthetic_root
    assert sorted(paths) == ["site-1", "site-2", "site-All"]
    for site, grade in (("site-1", "HGG"), ("site-2", "LGG")):
        entries = [e for s in ("training", "validation", "testing") for e in resolve_datalist(paths[site], s, root)]
        assert len(entries) == 3
        for e in entries:
            case = e["case"]
            folder = os.path.join(root, grade, case)
            assert e["image"] == [os.path.join(folder, f"{case}_{m}.nii.gz") for m in MODALITIES]
            assert e["label"] == os.path.join(folder, f"{case}_seg.nii.gz")
    assert json.load(open(paths["site-All"]))["training"] == (
        json.load(open(paths["site-1"]))["training"] + json.load(open(paths["site-2"]))["training"]
    )


def test_volumes_look_like_brats(synthetic_root):
    root, paths = synthetic_root
    entry = resolve_datalist(paths["site-1"], "training", root)[0]
    seg = nib.load(entry["label"])
    assert seg.shape == (120, 120, 78) and np.allclose(seg.header.get_zooms(), 2.0)
    labels = np.asarray(seg.dataobj)
    assert set(np.unique(labels)) == {0, 1, 2, 4}
    flair = np.asarray(nib.load(entry["image"][3]).dataobj).astype(float)
    t1 = np.asarray(nib.load(entry["image"][1]).dataobj).astype(float)
    t1ce = np.asarray(nib.load(entry["image"][0]).dataobj).astype(float)
    brain = flair > 0
    assert 0.1 < brain.mean() < 0.4 and not brain[labels > 0].size - brain[labels > 0].sum()
    assert flair[labels == 2].mean() > 1.3 * flair[brain & (labels == 0)].mean()  # oedema bright on FLAIR
    assert t1ce[labels == 4].mean() / t1[labels == 4].mean() > 1.5 * t1ce[brain].mean() / t1[brain].mean()


def test_hgg_and_lgg_profiles_differ():
    def stats(grade):
        out = []
        for i in range(4):
            v, _, info = generate_case(grade, "reduced", (3, 0 if grade == "HGG" else 1, i))
            out.append(((v["seg"] == 4).sum(), (v["seg"] > 0).sum(), info["core_radius_mm"]))
        return np.array(out, float)

    hgg, lgg = stats("HGG"), stats("LGG")
    assert (hgg[:, 0] > 0).all()  # every HGG enhances
    assert hgg[:, 0].mean() > 3 * lgg[:, 0].mean()
    assert hgg[:, 1].mean() > 1.5 * lgg[:, 1].mean()


def test_deterministic_per_seed():
    a, _, _ = generate_case("LGG", "reduced", (1, 2, 3))
    b, _, _ = generate_case("LGG", "reduced", (1, 2, 3))
    c, _, _ = generate_case("LGG", "reduced", (1, 2, 4))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["flair"], c["flair"])


def test_full_size_grid():
    v, affine, _ = generate_case("HGG", "full", (0, 1, 1))
    assert v["flair"].shape == (240, 240, 155) and v["flair"].dtype == np.int16
    assert np.allclose(np.abs(np.diag(affine)[:3]), 1.0)


def test_split_sizes():
    assert split_sizes(8) == (6, 1, 1) and split_sizes(20) == (14, 3, 3) and split_sizes(2) == (2, 0, 0)

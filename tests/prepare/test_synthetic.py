import json
import os

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.transforms import Compose

from fedbrats.cli import main
from fedbrats.prepare import synthetic
from fedbrats.prepare.msd_datalists import read_dataset_json
from fedbrats.prepare.phantom.case import generate_case, site_seed
from fedbrats.prepare.phantom.layouts import write_brats_case, write_msd_case
from fedbrats.prepare.synthetic import RECORD, ensure_synthetic_sites, split_sizes, write_sites
from fedbrats.runtime.constants import MODALITIES
from fedbrats.runtime.data.datalist import resolve_datalist, resolve_entry
from fedbrats.runtime.data.transforms import deterministic_transforms

SITES = ["site-1", "site-2", "site-3:mix"]
"""The reference sites and a third holding both grades in BraTS 2018's proportion."""


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("synthetic"))
    return root, write_sites(root, SITES, 3, "reduced", seed=7, workers=2)


def test_layout_naming_and_datalists(synthetic_root):
    root, paths = synthetic_root
    assert sorted(paths) == ["site-1", "site-2", "site-3", "site-All"]
    for site, grades in (("site-1", ["HGG"] * 3), ("site-2", ["LGG"] * 3), ("site-3", ["HGG", "LGG", "HGG"])):
        entries = [e for s in ("training", "validation", "testing") for e in resolve_datalist(paths[site], s, root)]
        assert [e["case"].split("_")[1] for e in entries] == grades, site
        for e, grade in zip(entries, grades):
            case = e["case"]
            folder = os.path.join(root, grade, case)
            assert e["image"] == [os.path.join(folder, f"{case}_{m}.nii.gz") for m in MODALITIES]
            assert e["label"] == os.path.join(folder, f"{case}_seg.nii.gz")
    assert json.load(open(paths["site-All"]))["training"] == [
        e for site in ("site-1", "site-2", "site-3") for e in json.load(open(paths[site]))["training"]
    ]


def test_every_site_gets_cases_of_its_own(synthetic_root):
    root, paths = synthetic_root
    hgg = [resolve_datalist(paths[site], "training", root)[0]["image"][0] for site in ("site-1", "site-3")]
    assert not np.array_equal(nib.load(hgg[0]).get_fdata(), nib.load(hgg[1]).get_fdata())
    assert site_seed("site-7") == 7 and site_seed("hospital-a") != site_seed("hospital-b")


def test_bad_sites_are_refused_before_anything_is_written(tmp_path, capsys):
    with pytest.raises(SystemExit, match="site 'site-3:GBM': 'GBM' is neither a grade, a scanner profile nor"):
        main(["synthetic", "--out", str(tmp_path / "d"), "--sites", "site-1", "site-3:GBM"])
    with pytest.raises(ValueError, match="site-All names the union"):
        write_sites(str(tmp_path / "d"), ["site-1", "site-All"], 1)
    assert not (tmp_path / "d").exists()


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


def test_a_split_that_does_not_add_up_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match=r"split \(2, 1, 1\) does not add up to 5 cases per site"):
        write_sites(str(tmp_path / "data"), ["site-1"], 5, split=(2, 1, 1))
    assert not (tmp_path / "data").exists()


def test_a_case_gives_the_same_training_tensors_in_the_msd_layout(tmp_path, tiny_settings):
    volumes, affine, _ = generate_case("HGG", "reduced", (7, 1, 1))
    root = str(tmp_path)
    brats = resolve_entry(write_brats_case(root, "Synth_1", "HGG", volumes, affine), root)
    msd = resolve_entry(write_msd_case(root, "Synth_1", volumes, affine), root)
    assert msd["format"] == "msd" and nib.load(msd["image"]).shape == (120, 120, 78, 4)
    cached = Compose(deterministic_transforms(tiny_settings.replace(pixdim=4.0)))
    a, b = cached(brats), cached(msd)
    assert a["image"].shape == (4, 60, 60, 40) and a["label"][2].sum() > 0  # enhancing tumour present
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])


def test_msd_layout_sites_and_dataset_json(tmp_path):
    root = str(tmp_path)
    paths = write_sites(root, ["site-1"], 2, "reduced", seed=7, workers=1, layout="msd")
    dataset = json.load(open(os.path.join(root, "dataset.json")))
    assert dataset["numTraining"] == 2 and dataset["modality"] == {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"}
    assert dataset["training"][0] == {
        "image": "./imagesTr/Synth18_HGG_site1_001.nii.gz",
        "label": "./labelsTr/Synth18_HGG_site1_001.nii.gz",
    }
    assert sorted(read_dataset_json(os.path.join(root, "dataset.json"))) == [
        "Synth18_HGG_site1_001",
        "Synth18_HGG_site1_002",
    ]
    entries = resolve_datalist(paths["site-1"], "training", root)
    assert [e["case"] for e in entries] == ["Synth18_HGG_site1_001", "Synth18_HGG_site1_002"]
    labels = np.asarray(nib.load(entries[0]["label"]).dataobj)
    assert set(np.unique(labels)) == {0, 1, 2, 3}


def test_sites_with_their_own_profiles_and_numbers_of_cases(tmp_path, capsys):
    root = tmp_path / "d"
    sites = ["a:HGG:noisy:2", "b:LGG"]
    main(["synthetic", "--out", str(root), "--sites", *sites, "--cases", "1", "--seed", "4", "--workers", "1"])
    out = capsys.readouterr().out
    split = "training / validation / testing"
    assert f"[synthetic] a: 2 cases (2 HGG, 0 LGG; 2 / 0 / 0 {split}), scanner profile noisy" in out
    assert f"[synthetic] b: 1 cases (0 HGG, 1 LGG; 1 / 0 / 0 {split}), scanner profile reference" in out
    assert "[synthetic] wrote 3 reduced cases of 2 sites" in out
    a = resolve_datalist(str(root / "datalists" / "a.json"), "training", str(root))
    b = resolve_datalist(str(root / "datalists" / "b.json"), "training", str(root))
    assert [e["case"] for e in a] == ["Synth18_HGG_a_001", "Synth18_HGG_a_002"] and len(b) == 1
    record = json.load(open(root / RECORD))
    assert record == {
        "sites": ["a:HGG:noisy", "b:LGG"],
        "cases": {"a": 2, "b": 1},
        "splits": {"a": [2, 0, 0], "b": [1, 0, 0]},
        "size": "reduced",
        "seed": 4,
        "layout": "brats",
    }
    noisy, _, _ = generate_case("HGG", "reduced", (4, site_seed("a"), 1), "noisy")
    assert np.array_equal(np.asarray(nib.load(a[0]["image"][3]).dataobj), noisy["flair"])


def test_a_split_must_add_up_to_a_site_s_own_cases(tmp_path):
    with pytest.raises(ValueError, match=r"split \(2, 1, 1\) does not add up to b's 5 cases"):
        write_sites(str(tmp_path / "data"), ["a", "b:5"], 4, split=(2, 1, 1))
    assert not (tmp_path / "data").exists()


def test_synthetic_sites_are_written_again_for_other_sites(tmp_path, monkeypatch, capsys):
    root = str(tmp_path)
    calls = []

    def counted(*args, **kwargs):
        calls.append([str(s) for s in args[1]])
        return write_sites(*args, **kwargs)

    monkeypatch.setattr(synthetic, "write_sites", counted)
    flair = os.path.join(root, "HGG", "Synth18_HGG_a_001", "Synth18_HGG_a_001_flair.nii.gz")
    data = ensure_synthetic_sites(root, ["a:HGG:1"], 5)
    assert data == {"a": {"data_root": root, "datalist": os.path.join(root, "datalists", "a.json")}}
    first = np.asarray(nib.load(flair).dataobj)
    assert ensure_synthetic_sites(root, ["a:HGG"], 1) == data  # the same site and count, said another way
    assert "data already in" in capsys.readouterr().out and len(calls) == 1
    ensure_synthetic_sites(root, ["a:HGG:noisy:1"], 5)
    out = capsys.readouterr().out
    assert f"{root} holds a:HGG: 1 reduced cases, seed 0, brats layout: writing it again" in out
    assert calls[-1] == ["a:HGG:noisy:1"] and not np.array_equal(np.asarray(nib.load(flair).dataobj), first)
    assert json.load(open(os.path.join(root, RECORD)))["sites"] == ["a:HGG:noisy"]
    # data without a record (an older version's, or a write that stopped half-way) is not trusted
    os.remove(os.path.join(root, RECORD))
    monkeypatch.setattr(synthetic, "write_sites", lambda *args, **kwargs: calls.append("again"))
    ensure_synthetic_sites(root, ["a:HGG:noisy:1"], 5)
    assert calls[-1] == "again" and f"no {RECORD}: writing the sites again" in capsys.readouterr().out

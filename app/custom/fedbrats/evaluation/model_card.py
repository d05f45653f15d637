"""``fedbrats model-card``: a model as a MONAI bundle folder with its card.

``<out>/configs/metadata.json`` is the card in MONAI's bundle convention (versions, task, network data format
of the 4 input and 3 output channels) plus what the product knows: which model it is, its round, the training
settings and the cross-site evaluation. ``<out>/models/model.pt`` holds the weights (a state dict) and
``<out>/configs/inference.json`` runs ``fedbrats infer`` on a datalist through ``python -m monai.bundle run``.
"""

import argparse
import glob
import importlib.metadata
import json
import os
from typing import Optional

import monai
import nibabel
import numpy as np
import torch

from fedbrats.evaluation.model_files import ModelFile, add_model_arguments, open_model, read_checkpoint
from fedbrats.evaluation.report import BEST_GLOBAL, FINAL_GLOBAL, RESULTS_FILE, build_report
from fedbrats.runtime.constants import DICE_METRICS, MEAN_DICE, MODALITIES, REGIONS
from fedbrats.runtime.data.datalist import write_json

SCHEMA = "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/meta_schema_20240725.json"
METADATA, INFERENCE, SETTINGS_FILE, WEIGHTS = "metadata.json", "inference.json", "training_settings.json", "model.pt"
REFERENCES = [
    "Myronenko, A. 3D MRI brain tumor segmentation using autoencoder regularization. BrainLes 2018, "
    "https://arxiv.org/abs/1810.11654",
    "Roth, H. R. et al. NVIDIA FLARE: Federated Learning from Simulation to Real-World. 2022, "
    "https://arxiv.org/abs/2210.13291",
]

TRAINED = {"centralised model": ", trained on pooled data without federation", "model": ""}
TRAINED["federated"] = ", from federated averaging on NVIDIA FLARE"


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def report_model_name(kind: str) -> Optional[str]:
    """The name of a model in the cross-site evaluation results."""
    if kind == "final global model":
        return FINAL_GLOBAL
    if kind == "best global model":
        return BEST_GLOBAL
    prefix = "best local model of "
    return kind[len(prefix) :] if kind.startswith(prefix) else None


def results_near(model_path: str) -> Optional[str]:
    """FLARE's cross-site results of the run that wrote a model (server app folder or a site's app folder)."""
    app = os.path.dirname(os.path.abspath(model_path))
    patterns = (
        os.path.join(app, "..", "cross_site_val", RESULTS_FILE),
        os.path.join(app, "..", "..", "..", "server", "*", "cross_site_val", RESULTS_FILE),
    )
    found = sorted(p for pattern in patterns for p in glob.glob(pattern))
    return os.path.normpath(found[0]) if found else None


def cross_site(model_file: ModelFile, report: Optional[str]) -> Optional[dict]:
    """This model's row of the cross-site evaluation (per site and case-weighted average), if there is one."""
    name = report_model_name(model_file.kind)
    path = report or results_near(model_file.path)
    if not name or not path:
        return None
    with open(path) as f:
        data = json.load(f)
    built = data if "models" in data else build_report(data)
    row = next((r for r in built["models"] if r["model"] == name), None)
    if row is None:
        return None
    return {"source": os.path.abspath(path), "split": built["split"], "sites": row["sites"], "average": row["average"]}


def network_data_format(settings) -> dict:
    shape = ["8*n", "8*n", "8*n"]
    channels = {str(i): m for i, m in enumerate(("T1c", "T1", "T2", "FLAIR"))}
    return {
        "inputs": {
            "image": {
                "type": "image",
                "format": "magnitude",
                "modality": "MR",
                "num_channels": len(MODALITIES),
                "spatial_shape": shape,
                "dtype": "float32",
                "value_range": [],
                "is_patch_data": True,
                "channel_def": channels,
                "preprocessing": (
                    f"channels {', '.join(MODALITIES)} (BraTS file suffixes) stacked, reoriented to RAS, resampled "
                    f"to {settings.pixdim:g} mm isotropic (bilinear), each channel z-score normalised over its "
                    "non-zero voxels (MONAI NormalizeIntensityd nonzero, channel_wise)"
                ),
            }
        },
        "outputs": {
            "pred": {
                "type": "image",
                "format": "segmentation",
                "num_channels": len(REGIONS),
                "spatial_shape": shape,
                "dtype": "float32",
                "value_range": [0, 1],
                "is_patch_data": True,
                "channel_def": {"0": "Tumor core", "1": "Whole tumor", "2": "Enhancing tumor"},
                "postprocessing": (
                    "sigmoid, threshold 0.5; fedbrats infer maps the probabilities back to the input grid and "
                    "writes BraTS labels: WT 2, then TC 1, then ET 4"
                ),
            }
        },
    }


def eval_metrics(model_file: ModelFile, crosssite: Optional[dict]) -> dict:
    """Cross-site case-weighted Dice when known, else the validation Dice recorded with the model."""
    average = (crosssite or {}).get("average")
    keys = DICE_METRICS + (MEAN_DICE,)
    return {k: v for k, v in (average or model_file.validation).items() if k in keys}


def metadata(model_file: ModelFile, crosssite: Optional[dict] = None) -> dict:
    """The card of a model, in MONAI's bundle ``metadata.json`` convention."""
    settings = model_file.settings
    version = _version("fedbrats")
    rounds = f", round {model_file.round}" if model_file.round is not None else ""
    return {
        "schema": SCHEMA,
        "version": version,
        "changelog": {version: f"{model_file.kind} exported by fedbrats model-card"},
        "monai_version": monai.__version__,
        "pytorch_version": torch.__version__.split("+")[0],
        "numpy_version": np.__version__,
        "required_packages_version": {"nibabel": nibabel.__version__, "nvflare": _version("nvflare")},
        "name": f"fedbrats SegResNetVAE, {model_file.kind}",
        "task": "Multimodal brain tumour segmentation",
        "description": (
            f"SegResNetVAE ({model_file.kind}{rounds}{TRAINED.get(model_file.kind, TRAINED['federated'])}) "
            "segmenting the glioma sub-regions tumour core, whole tumour and enhancing tumour from T1c, T1, T2 and "
            "FLAIR MRI"
        ),
        "authors": "fedbrats contributors",
        "copyright": "Copyright (c) fedbrats contributors",
        "license": "Apache-2.0",
        "data_source": "https://www.med.upenn.edu/sbia/brats2018/data.html",
        "data_type": "nibabel",
        "image_classes": (
            f"4 channel data, T1c, T1, T2, FLAIR, co-registered, resampled to {settings.pixdim:g} mm, "
            "z-score normalised per channel over non-zero voxels"
        ),
        "label_classes": (
            "3 channel data, channel 0 tumour core (BraTS labels 1+4), channel 1 whole tumour (1+2+4), "
            "channel 2 enhancing tumour (4)"
        ),
        "pred_classes": "3 channels data, same as label_classes",
        "eval_metrics": eval_metrics(model_file, crosssite),
        "intended_use": "Research on federated brain tumour segmentation; not for diagnostic use",
        "references": REFERENCES,
        "network_data_format": network_data_format(settings),
        "fedbrats": {
            "model": model_file.kind,
            "model_file": os.path.abspath(model_file.path),
            "round": model_file.round,
            "num_rounds": model_file.num_rounds,
            "validation": model_file.validation,
            "settings_source": model_file.settings_source,
            "training_settings": settings.to_dict(),
            "inference": {
                "sliding_window": list(settings.window),
                "sw_overlap": settings.sw_overlap,
                "threshold": 0.5,
                "et_min_volume_mm3": settings.et_min_volume,
            },
            "cross_site_evaluation": crosssite,
        },
    }


def inference_config() -> dict:
    """``configs/inference.json``: ``fedbrats infer`` of a datalist split with this bundle's model and settings."""
    argv = (
        "[@model_path, '--settings', @settings_path, '--datalist', @datalist, '--data-root', @dataset_dir, "
        "'--split', @split, '--out', @output_dir, '--device', @device]"
    )
    return {
        "imports": ["$from fedbrats.evaluation.infer import main as fedbrats_infer"],
        "bundle_root": ".",
        "model_path": f"$@bundle_root + '/models/{WEIGHTS}'",
        "settings_path": f"$@bundle_root + '/configs/{SETTINGS_FILE}'",
        "dataset_dir": "/data/brats18",
        "datalist": "$@dataset_dir + '/datalist.json'",
        "split": "testing",
        "output_dir": "$@bundle_root + '/eval'",
        "device": "auto",
        "run": [f"$fedbrats_infer({argv})"],
    }


def write_bundle(model_file: ModelFile, out: str, report: Optional[str] = None) -> dict:
    """Write the bundle folder; returns the card."""
    card = metadata(model_file, cross_site(model_file, report))
    os.makedirs(os.path.join(out, "models"), exist_ok=True)
    torch.save(read_checkpoint(model_file.path)["model"], os.path.join(out, "models", WEIGHTS))
    write_json(os.path.join(out, "configs", METADATA), card)
    write_json(os.path.join(out, "configs", SETTINGS_FILE), model_file.settings.to_dict())
    write_json(os.path.join(out, "configs", INFERENCE), inference_config())
    return card


def default_out(model_path: str) -> str:
    stem = os.path.splitext(os.path.basename(model_path))[0]
    return os.path.join(os.path.dirname(os.path.abspath(model_path)), f"{stem}_bundle")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--report", help="report.json or cross_val_results.json (default: the run's, if found)")
    parser.add_argument("--out", help="bundle folder (default: <model>_bundle beside the model)")


def run(args: argparse.Namespace) -> None:
    model_file = open_model(args.model, args.settings, args.job)
    out = args.out or default_out(args.model)
    card = write_bundle(model_file, out, args.report)
    table = card["fedbrats"]["cross_site_evaluation"]
    print(f"[model-card] {model_file.kind}; settings from {model_file.settings_source}")
    print(f"[model-card] cross-site evaluation: {table['source'] if table else 'none found'}")
    files = f"configs/{METADATA}, configs/{INFERENCE}, models/{WEIGHTS}"
    print(f"[model-card] bundle written to {os.path.abspath(out)}: {files}")
    print(
        f"[model-card] run it: python -m monai.bundle run --config_file {os.path.join(out, 'configs', INFERENCE)} "
        f"--bundle_root {out} --dataset_dir DATA --datalist DATALIST"
    )

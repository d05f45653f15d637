"""Centralised baseline: train SegResNetVAE on one datalist without FLARE, keep the best model, test it."""

import argparse
import os
import time

import torch
from monai.utils import set_determinism

from ..constants import MEAN_DICE, N_CASES, REGION_METRICS, REGIONS
from ..data import site_loader
from ..datalist import write_json
from ..engine import SegmentationEngine, select_device
from ..model import load_weights
from ..settings import TrainSettings, add_settings_arguments, settings_overrides


def format_metrics(metrics: dict) -> str:
    regions = " ".join(f"{r} {metrics[m]:.4f}" for r, m in zip(REGIONS, REGION_METRICS))
    return f"{regions} mean {metrics[MEAN_DICE]:.4f} ({metrics[N_CASES]} cases)"


def train_central(
    data_root: str,
    datalist: str,
    out_dir: str,
    settings: TrainSettings,
    epochs: int,
    val_every: int = 1,
    max_minutes: float = 0.0,
    device: str = "auto",
) -> dict:
    """Train for ``epochs`` (or until ``max_minutes``), validating every ``val_every`` epochs."""
    set_determinism(settings.seed)
    os.makedirs(out_dir, exist_ok=True)
    engine = SegmentationEngine(settings, select_device(device))
    train_loader = site_loader(datalist, data_root, "training", settings, train=True)
    val_loader = site_loader(datalist, data_root, "validation", settings, train=False)
    best_path, last_path = os.path.join(out_dir, "best_model.pt"), os.path.join(out_dir, "last_model.pt")
    history, best, start = [], -1.0, time.time()
    for epoch in range(1, epochs + 1):
        train = engine.train_epoch(train_loader)
        row = {"epoch": epoch, "loss": train["loss"], "steps": train["steps"], "minutes": (time.time() - start) / 60}
        out_of_time = max_minutes and (time.time() - start) / 60 >= max_minutes
        if epoch % val_every == 0 or epoch == epochs or out_of_time:
            row["validation"] = engine.validate(val_loader)
            if row["validation"][MEAN_DICE] > best:
                best = row["validation"][MEAN_DICE]
                torch.save({"model": engine.get_weights(), "epoch": epoch, "settings": settings.to_dict()}, best_path)
            print(f"[central] epoch {epoch}/{epochs} loss {train['loss']:.4f} val {format_metrics(row['validation'])} "
                  f"{row['minutes']:.1f} min", flush=True)
        else:
            print(f"[central] epoch {epoch}/{epochs} loss {train['loss']:.4f} {row['minutes']:.1f} min", flush=True)
        history.append(row)
        if out_of_time:
            print(f"[central] stopping after {max_minutes} minutes", flush=True)
            break
    torch.save({"model": engine.get_weights(), "epoch": history[-1]["epoch"], "settings": settings.to_dict()}, last_path)
    load_weights(engine.model, best_path)
    test_loader = site_loader(datalist, data_root, "testing", settings, train=False)
    test = engine.validate(test_loader)
    result = {
        "settings": settings.to_dict(),
        "history": history,
        "best_validation_mean_dice": best,
        "test_of_best_model": test,
        "minutes": (time.time() - start) / 60,
    }
    write_json(os.path.join(out_dir, "metrics.json"), result)
    print(f"[central] test (best model): {format_metrics(test)}")
    print(f"[central] outputs in {os.path.abspath(out_dir)}: best_model.pt, last_model.pt, metrics.json")
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--datalist", required=True, help="e.g. <data-root>/datalists/site-All.json")
    parser.add_argument("--out", default="workspace/central")
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--val-every", type=int, default=1)
    parser.add_argument("--max-minutes", type=float, default=0.0, help="stop training after this many minutes")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    add_settings_arguments(parser)


def run(args: argparse.Namespace) -> None:
    train_central(
        args.data_root, args.datalist, args.out, TrainSettings.from_dict(settings_overrides(args)), args.epochs, args.val_every,
        args.max_minutes, args.device,
    )

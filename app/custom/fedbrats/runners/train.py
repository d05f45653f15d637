"""Centralised baseline: train SegResNetVAE on one datalist without FLARE, keep the best model, test it.

With ``--init-model`` it fine-tunes a trained model instead, e.g. the federation's global model on one site's own
cases (docs/training.md: what a site gains)."""

import argparse
import os
import pickle
import time

import torch
from monai.utils import set_determinism

from fedbrats.runtime.constants import DICE_METRICS, MEAN_DICE, N_CASES, REGIONS
from fedbrats.runtime.data.datalist import write_json
from fedbrats.runtime.data.loaders import cache_summary, site_loader
from fedbrats.runtime.engine import SegmentationEngine, select_device
from fedbrats.runtime.model import load_weights
from fedbrats.runtime.settings import SETTINGS_FLAGS, TrainSettings, add_settings_arguments, settings_overrides

BEST_MODEL, LAST_MODEL = "best_model.pt", "last_model.pt"


def format_metrics(metrics: dict) -> str:
    regions = " ".join(f"{r} {metrics[m]:.4f}" for r, m in zip(REGIONS, DICE_METRICS))
    return f"{regions} mean {metrics[MEAN_DICE]:.4f} ({metrics[N_CASES]} cases)"


def fit(
    engine: SegmentationEngine,
    train_loader,
    val_loader,
    out_dir: str,
    steps: int,
    val_every: int,
    max_minutes: float = 0.0,
    label: str = "central",
) -> dict:
    """Train ``steps`` optimiser steps, validating every ``val_every`` steps; keep the best and the last model.

    Writes ``best_model.pt`` (highest validation mean Dice) and ``last_model.pt`` into ``out_dir``. Each history
    entry's ``seconds``: from the start to the end of its steps, when its model was made (``minutes``: after its
    validation).
    """
    os.makedirs(out_dir, exist_ok=True)
    best_path, last_path = os.path.join(out_dir, BEST_MODEL), os.path.join(out_dir, LAST_MODEL)
    steps_per_epoch = max(len(train_loader), 1)
    settings = engine.settings.to_dict()
    history, best, done, start = [], -1.0, 0, time.time()
    while done < steps:
        engine.set_progress(done / steps)
        train = engine.train_steps(train_loader, min(val_every, steps - done))
        done += train["steps"]
        made = time.time() - start
        validation = engine.validate(val_loader)
        minutes = (time.time() - start) / 60
        history.append(
            {
                "steps": done,
                "epoch": round(done / steps_per_epoch, 2),
                "loss": train["loss"],
                "minutes": minutes,
                "seconds": round(made, 2),
                "validation": validation,
            }
        )
        if validation[MEAN_DICE] > best:
            best = validation[MEAN_DICE]
            torch.save({"model": engine.get_weights(), "steps": done, "settings": settings}, best_path)
        print(
            f"[{label}] step {done}/{steps} (epoch {history[-1]['epoch']:g}) loss {train['loss']:.4f} "
            f"val {format_metrics(validation)} {minutes:.1f} min, about {minutes / done * (steps - done):.1f} min left",
            flush=True,
        )
        if max_minutes and minutes >= max_minutes:
            print(f"[{label}] stopping after {max_minutes} minutes", flush=True)
            break
    torch.save({"model": engine.get_weights(), "steps": done, "settings": settings}, last_path)
    return {"history": history, "best_validation_mean_dice": best, "steps": done, "minutes": (time.time() - start) / 60}


def start_from(engine: SegmentationEngine, path: str) -> None:
    """Load a model file of this product or FLARE's into ``engine``'s model, or exit naming the file."""
    try:
        load_weights(engine.model, path)
    except (OSError, RuntimeError, KeyError, pickle.UnpicklingError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SystemExit(f"--init-model {path}: not a model of these settings ({reason})") from None


def train_central(
    data_root: str,
    datalist: str,
    out_dir: str,
    settings: TrainSettings,
    epochs: int,
    val_every: int = 1,
    max_minutes: float = 0.0,
    device: str = "auto",
    steps: int = 0,
    init_model: str = "",
) -> dict:
    """Train for ``epochs`` passes (or ``steps`` optimiser steps, or until ``max_minutes``), validating every
    ``val_every`` epochs, then test the best model on the datalist's testing split. ``init_model``: start from
    this model's weights instead of a fresh model."""
    set_determinism(settings.seed)
    engine = SegmentationEngine(settings, select_device(device))
    if init_model:
        start_from(engine, init_model)
        print(f"[central] starting from {os.path.abspath(init_model)}", flush=True)
    train_loader = site_loader(datalist, data_root, "training", settings, train=True)
    val_loader = site_loader(datalist, data_root, "validation", settings, train=False)
    for split, loader in (("training", train_loader), ("validation", val_loader)):
        print(f"[central] {split}: {cache_summary(loader.dataset)}", flush=True)
    steps_per_epoch = len(train_loader)
    result = fit(
        engine,
        train_loader,
        val_loader,
        out_dir,
        steps or epochs * steps_per_epoch,
        val_every * steps_per_epoch,
        max_minutes,
    )
    load_weights(engine.model, os.path.join(out_dir, BEST_MODEL))
    test = engine.validate(site_loader(datalist, data_root, "testing", settings, train=False))
    result.update({"settings": settings.to_dict(), "test_of_best_model": test})
    write_json(os.path.join(out_dir, "metrics.json"), result)
    print(f"[central] test (best model): {format_metrics(test)}")
    print(f"[central] outputs in {os.path.abspath(out_dir)}: {BEST_MODEL}, {LAST_MODEL}, metrics.json")
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--datalist", required=True, help="e.g. <data-root>/datalists/site-All.json")
    parser.add_argument("--out", default="workspace/central")
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--steps", type=int, default=0, help="optimiser steps to train instead of --epochs")
    parser.add_argument("--val-every", type=int, default=1, help="validate every this many epochs")
    parser.add_argument("--max-minutes", type=float, default=0.0, help="stop training after this many minutes")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument(
        "--init-model",
        default="",
        help="fine-tune this model (e.g. the federation's FL_global_model.pt) instead of training a fresh one; "
        "its training settings come from the model's job config (or --settings, --job), single flags override them",
    )
    parser.add_argument("--job", help="with --init-model: job folder, simulator workspace or job result of the model")
    add_settings_arguments(parser)


def init_settings(args: argparse.Namespace) -> TrainSettings:
    """The settings to train with: the command line's, or with ``--init-model`` the model's own (found as
    ``fedbrats infer`` finds them) changed by the single flags given, e.g. ``--lr``."""
    if not args.init_model:
        return TrainSettings.from_dict(settings_overrides(args))
    from fedbrats.evaluation.model_files import open_model

    known = open_model(args.init_model, args.settings, args.job)
    flags = {n: getattr(args, n) for n in SETTINGS_FLAGS if getattr(args, n) is not None}
    print(f"[central] training settings of {args.init_model}: {known.settings_source}", flush=True)
    return known.settings.replace(**flags)


def run(args: argparse.Namespace) -> None:
    train_central(
        args.data_root,
        args.datalist,
        args.out,
        init_settings(args),
        args.epochs,
        args.val_every,
        args.max_minutes,
        args.device,
        args.steps,
        args.init_model,
    )

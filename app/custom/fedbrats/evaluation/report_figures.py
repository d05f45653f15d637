"""Pictures of the cross-site report: mean Dice model x site, learning curves, per-case Dice per region."""

import math
import os
from typing import Dict, Optional

import numpy as np

from fedbrats.plots import DPI, pyplot, save, site_colour
from fedbrats.runtime.constants import DICE, MEAN_DICE, PER_CASE, REGIONS, metric_name

HEATMAP_PNG, CURVES_PNG, BOXES_PNG = "report_heatmap.png", "report_curves.png", "report_dice_boxes.png"


def _mean(result: Optional[dict]) -> float:
    return result[MEAN_DICE] if result else math.nan


def plot_heatmap(report: dict, path: str) -> str:
    """Mean Dice of every model (rows) on every site and the case-weighted AVE (columns), values written in."""
    plt = pyplot()
    sites, rows = report["sites"], report["models"]
    values = np.array([[_mean(r["sites"][s]) for s in sites] + [_mean(r["average"])] for r in rows], dtype=float)
    fig, ax = plt.subplots(figsize=(1.4 * len(sites) + 5.5, 0.6 * len(rows) + 1.8), dpi=DPI)
    cmap = plt.get_cmap("viridis").with_extremes(bad="lightgrey")
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto")
    for (i, j), value in np.ndenumerate(values):
        missing = math.isnan(value)
        text, colour = ("missing", "black") if missing else (f"{value:.3f}", "white" if value < 0.6 else "black")
        ax.text(j, i, text, ha="center", va="center", color=colour, fontsize=10)
    ax.set_xticks(range(len(sites) + 1), labels=sites + ["AVE (case-weighted)"])
    ax.set_yticks(range(len(rows)), labels=[r["short"] for r in rows])
    ax.axvline(len(sites) - 0.5, color="white", linewidth=3)
    ax.set_xlabel("evaluated on the cases of")
    ax.set_title(f"Cross-site evaluation, {report['split']} split: mean Dice (TC, WT, ET)")
    fig.colorbar(image, ax=ax, label="mean Dice")
    return save(fig, path)


def plot_curves(curves: dict, path: str) -> Optional[str]:
    """Validation Dice of the global and local models per round and site, and the training loss; None if no data."""
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    sites, server = curves.get("sites") or {}, curves.get("server") or []
    if not server and not any(c["global"] or c["local"] for c in sites.values()):
        return None
    with_loss = any(c["loss"] for c in sites.values())
    fig, axes = plt.subplots(1, 2 if with_loss else 1, figsize=(12 if with_loss else 7, 4.4), dpi=DPI, squeeze=False)
    dice = axes[0][0]
    for k, (site, curve) in enumerate(sites.items()):
        if curve["global"]:
            dice.plot(*zip(*curve["global"]), color=site_colour(k), marker="o", markersize=4, label=f"{site}: global")
        if curve["local"]:
            dice.plot(*zip(*curve["local"]), color=site_colour(k), marker="x", linestyle="--", label=f"{site}: local")
    if server:
        dice.plot(*zip(*server), color="black", linewidth=2, marker="s", markersize=4, label="global, case-weighted")
    dice.set_ylim(0, 1)
    dice.set_xlabel("round (models after this many rounds of training)")
    dice.set_ylabel(f"validation mean Dice ({', '.join(REGIONS)})")
    dice.set_title("Validation Dice of the global and local models")
    dice.legend(fontsize=8, loc="best")
    if with_loss:
        loss = axes[0][1]
        for k, (site, curve) in enumerate(sites.items()):
            if curve["loss"]:
                loss.plot(*zip(*curve["loss"]), color=site_colour(k), marker="o", markersize=4, label=site)
        loss.set_xlabel("round")
        loss.set_ylabel("training loss (mean over the round's steps)")
        loss.set_title("Local training loss")
        loss.legend(fontsize=8)
    for ax in axes[0]:
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return save(fig, path)


def plot_dice_boxes(report: dict, path: str) -> Optional[str]:
    """Per-case Dice of each model per region, pooled over the sites: boxes of the quartiles, whiskers to the
    extremes, every case a point coloured by its site; None without per-case values."""
    plt = pyplot()
    sites = report["sites"]
    rows = [r for r in report["models"] if any(s and s.get(PER_CASE) for s in r["sites"].values())]
    if not rows:
        return None
    fig, axes = plt.subplots(1, len(REGIONS), figsize=(max(9, 1.1 * len(rows) * len(REGIONS) + 1), 4.6), dpi=DPI)
    jitter = np.random.default_rng(0)
    for ax, region in zip(axes, REGIONS):
        pooled = []
        for i, row in enumerate(rows, 1):
            values = []
            for k, site in enumerate(sites):
                cases = (row["sites"][site] or {}).get(PER_CASE, {}).get(metric_name(DICE, region), [])
                x = i + jitter.uniform(-0.12, 0.12, len(cases))
                label = site if i == 1 and region == REGIONS[0] else None
                ax.scatter(x, cases, s=14, color=site_colour(k), alpha=0.8, zorder=3, label=label)
                values += cases
            pooled.append(values)
        ax.boxplot(pooled, widths=0.5, whis=(0, 100), medianprops={"color": "black"})
        ax.set_xticks(range(1, len(rows) + 1), labels=[r["short"] for r in rows], rotation=30, ha="right")
        ax.set_ylim(-0.05, 1.05)
        ax.set_title(region)
        ax.grid(alpha=0.3, axis="y")
    axes[0].set_ylabel(f"Dice per case ({report['split']} split)")
    fig.suptitle("Per-case Dice of every model, all sites' cases together")
    fig.legend(fontsize=8, loc="upper right", title="cases of")
    return save(fig, path)


def write_figures(report: dict, out_dir: str) -> Dict[str, str]:
    """Draw every picture the report's data allows into ``out_dir``; returns {kind: file name}."""
    drawn = {"heatmap": plot_heatmap(report, os.path.join(out_dir, HEATMAP_PNG)) if report["models"] else None}
    drawn["curves"] = plot_curves(report.get("curves") or {}, os.path.join(out_dir, CURVES_PNG))
    drawn["dice_boxes"] = plot_dice_boxes(report, os.path.join(out_dir, BOXES_PNG))
    return {kind: os.path.basename(path) for kind, path in drawn.items() if path}

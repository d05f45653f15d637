"""``fedbrats clicks``: Dice against the number of simulated clicks of an interactive model on every site's test
cases, the clicks to reach Dice 0.85 and 0.90 (NoC@85, NoC@90) per region, and the time per interaction.

Each case starts from no segmentation, or from a diagnostic model's (``--start-model``); then ``--clicks`` times a
simulated user clicks once in every region that is still wrong, at the centre of its largest wrong part (positive
where the region was missed, negative where it is false), and the case is segmented again with every click so far,
as :class:`~fedbrats.evaluation.annotator.Annotator` segments it for a user: on the case's own grid, consistent with
the clicks. ``n`` clicks are thus ``n`` per region. A case that never reaches a Dice counts as ``--clicks`` for its
NoC, and the cases that never did are counted beside it.
"""

import argparse
import functools
import json
import os
import shlex
import sys
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from fedbrats.evaluation.annotator import Annotator
from fedbrats.evaluation.model_files import add_model_arguments, load_model, open_model
from fedbrats.evaluation.regions import label_regions
from fedbrats.evaluation.segmenter import CaseSegmenter
from fedbrats.plots import pyplot, save, site_colour
from fedbrats.prepare.check_data import find_datalist
from fedbrats.runtime.constants import CLICK_REGIONS, SPLITS
from fedbrats.runtime.data.datalist import load_datalist, resolve_images, resolve_path
from fedbrats.runtime.data.transforms import LoadBratsCased
from fedbrats.runtime.engine import configure_cpu
from fedbrats.runtime.interactive.session import click_session
from fedbrats.runtime.model import sliding_window_logits

PREFIX = "[clicks]"
THRESHOLDS = (0.85, 0.90)
SHOWN_CLICKS = (0, 1, 3, 5, 10)
"""Numbers of clicks the tables show."""
ALL = "all"
"""Every site's cases together."""
PAGE = "interactive"
"""Name of the page, its JSON and its figure in ``--docs``."""


def noc_name(threshold: float) -> str:
    return f"noc@{round(threshold * 100)}"


def clicks_to_reach(curve: Sequence[float], threshold: float, clicks: int) -> Optional[int]:
    """The first number of clicks whose Dice reaches ``threshold``; None when none of 0 to ``clicks`` does."""
    return next((n for n, d in enumerate(curve[: clicks + 1]) if d >= threshold), None)


def summary(sessions: List[dict], clicks: int) -> Dict[str, object]:
    """Mean Dice per region and number of clicks, mean NoC per region and threshold (a case that never reaches it
    counting ``clicks``), how many never did, and the mean seconds per interaction of ``sessions``."""
    out = {"cases": len(sessions), "dice": {}, "noc": {}, "never": {}}
    for k, region in enumerate(CLICK_REGIONS):
        curves = [[d[k] for d in s["dice"]] for s in sessions]
        out["dice"][region] = [float(np.mean([c[n] for c in curves])) for n in range(clicks + 1)] if curves else []
        reached = {noc_name(t): [clicks_to_reach(c, t, clicks) for c in curves] for t in THRESHOLDS}
        out["noc"][region] = {t: float(np.mean([clicks if r is None else r for r in v])) for t, v in reached.items()}
        out["never"][region] = {t: sum(r is None for r in v) for t, v in reached.items()}
    seconds = [t for s in sessions for t in s["seconds"]]
    out["seconds_per_click"] = float(np.mean(seconds)) if seconds else None
    return out


def site_cases(args: argparse.Namespace) -> Dict[str, List[dict]]:
    """Each site's cases of ``--split`` (images and label), from ``--site-data`` or ``--datalist``."""
    if args.site_data:
        with open(args.site_data) as f:
            sites = json.load(f)
    elif args.datalist and args.data_root:
        sites = {args.site: {"data_root": args.data_root, "datalist": args.datalist}}
    else:
        raise SystemExit("fedbrats clicks: give --site-data, or --datalist with --data-root")
    out = {}
    for site, data in sites.items():
        root = data["data_root"]
        path = find_datalist(data.get("datalist") or os.path.join("datalists", f"{site}.json"), root)
        entries = load_datalist(path, args.split)[: args.max_cases or None]
        cases = [resolve_images(e, root) for e in entries]
        out[site] = [{**c, "label": resolve_path(e["label"], root, c["case"])} for c, e in zip(cases, entries)]
    return out


def evaluate_clicks(
    annotator: Annotator,
    sites: Dict[str, List[dict]],
    clicks: int,
    start_segmenter: Optional[CaseSegmenter] = None,
) -> Dict[str, object]:
    """Every case's click session (:func:`~fedbrats.runtime.interactive.session.click_session`) on its own grid, and
    the :func:`summary` of each site and of all cases."""
    load_label = LoadBratsCased()
    results, everyone = {}, []
    for site, cases in sites.items():
        sessions = []
        for case in cases:
            begun = time.time()
            reference = label_regions(load_label(case)["label"][0])
            start = start_segmenter(case) if start_segmenter is not None else None
            loaded = annotator.load_case(case["image"], case["case"])
            session = click_session(functools.partial(annotator.regions, loaded, start=start), reference, clicks)
            sessions.append(session)
            last = ", ".join(f"{r} {d:.3f}" for r, d in zip(CLICK_REGIONS, session["dice"][-1]))
            print(
                f"{PREFIX} {site} {case['case']}: Dice after {clicks} clicks {last} ({time.time() - begun:.1f} s)",
                flush=True,
            )
        results[site] = summary(sessions, clicks)
        everyone += sessions
    results[ALL] = summary(everyone, clicks)
    return results


def markdown(result: dict, figure: str) -> str:
    """The page of a result: what was run, Dice after 0, 1, 3, 5 and 10 clicks and NoC per site and region."""
    n = result["clicks"]
    shown = [c for c in SHOWN_CLICKS if c <= n]
    nocs = [noc_name(t) for t in THRESHOLDS]
    lines = [
        "# Interactive segmentation: Dice against clicks",
        "",
        f"Command: `{result['command']}`  ",
        f"Model: `{result['model']}`; split `{result['split']}`; start: {result['start']}; "
        f"{result['threads']} CPU threads, device {result['device']}; {result['date']}",
        "",
        "The model (`brats_deepgrow`, `jobs/brats_deepgrow/job.py`) is SegResNetVAE with 13 input channels: the four "
        "modalities, a starting segmentation (TC, WT, ET; zeros when none) and a positive and a negative click map "
        "per region (MONAI deepgrow's Gaussian click maps). Each training step starts from no segmentation or the "
        "crop's label grown, shrunk or with a region dropped, adds 0 to `max_clicks` rounds of clicks drawn as "
        "MONAI's deepgrow draws them from the model's own prediction, then learns from the last input; each site "
        "validates with Dice after `eval_clicks` clicks per region, which selects the best global model "
        "(`fedbrats.runtime.interactive`). A click always holds in the result: a ball of 2 voxels around it is put "
        "into (or out of) its region, with the nested regions.",
        "",
        "Each case starts from the start above; then a simulated user clicks once in every region that is still "
        "wrong, at the centre of its largest wrong part (positive where the region was missed, negative where it is "
        "false), and the case is segmented again with every click so far, on its own grid. `n` clicks are `n` per "
        f"region. NoC@85 and NoC@90: the mean number of clicks to reach Dice 0.85 and 0.90; a case that never does "
        f"within {n} clicks counts {n}, and how many never did is in brackets.",
        "",
        "| site | region | cases | " + " | ".join(f"Dice {c} clicks" for c in shown) + " | NoC@85 | NoC@90 | s/click |",
        "|---|---|---|" + "---|" * (len(shown) + 3),
    ]
    for site, s in result["sites"].items():
        for region in CLICK_REGIONS:
            dice = " | ".join(f"{s['dice'][region][c]:.3f}" for c in shown)
            noc = " | ".join(f"{s['noc'][region][t]:.1f} ({s['never'][region][t]})" for t in nocs)
            per_click = f"{s['seconds_per_click']:.2f}" if s["seconds_per_click"] is not None else "-"
            lines.append(f"| {site} | {region.upper()} | {s['cases']} | {dice} | {noc} | {per_click} |")
    lines += ["", f"![Dice against clicks]({figure})", ""]
    return "\n".join(lines)


def plot(result: dict, path: str) -> str:
    """Mean Dice against clicks: a panel per region, a line per site and a dashed one for all cases."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(CLICK_REGIONS), figsize=(12, 3.6), sharey=True)
    for ax, region in zip(axes, CLICK_REGIONS):
        for k, (site, s) in enumerate(result["sites"].items()):
            if s["cases"]:
                style = {"color": "black", "linestyle": "--"} if site == ALL else {"color": site_colour(k)}
                ax.plot(range(len(s["dice"][region])), s["dice"][region], marker=".", label=site, **style)
        for t in THRESHOLDS:
            ax.axhline(t, color="grey", linewidth=0.6, linestyle=":")
        ax.set_title(region.upper())
        ax.set_xlabel("clicks per region")
        ax.set_ylim(0, 1)
    axes[0].set_ylabel("mean Dice")
    axes[-1].legend(loc="lower right")
    return save(fig, path)


def write(result: dict, folder: str, name: str) -> Dict[str, str]:
    """``<name>.json``, ``<name>.md`` and ``<name>.png`` of ``result`` in ``folder``; returns their paths."""
    os.makedirs(folder, exist_ok=True)
    paths = {ext: os.path.join(folder, f"{name}.{ext}") for ext in ("json", "md", "png")}
    with open(paths["json"], "w") as f:
        json.dump(result, f, indent=2)
    plot(result, paths["png"])
    with open(paths["md"], "w") as f:
        f.write(markdown(result, os.path.basename(paths["png"])))
    return paths


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--site-data", help="JSON of each site's data_root and datalist (a simulator's sites.json)")
    parser.add_argument("--datalist", help="one site's datalist (with --data-root)")
    parser.add_argument("--data-root", help="data root of --datalist")
    parser.add_argument("--site", default="site", help="name of the --datalist site in the results")
    parser.add_argument("--split", default="testing", choices=SPLITS, help="datalist split (testing)")
    parser.add_argument("--clicks", type=int, default=10, help="clicks per region after the start (10)")
    parser.add_argument("--start-model", help="a diagnostic model whose segmentation each case starts from")
    parser.add_argument("--max-cases", type=int, default=0, help="at most this many cases per site (0: all)")
    parser.add_argument("--out", default="workspace/clicks", help="folder of clicks.json, clicks.md and clicks.png")
    parser.add_argument("--docs", help="also write the page, its JSON and its figure into this folder (docs)")
    parser.add_argument("--name", default=PAGE, help=f"name of the page in --docs ({PAGE}: {PAGE}.md, .json, .png)")
    parser.add_argument("--device", default="cpu", help="cpu, auto, cuda or cuda:N")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: one per core)")


def run(args: argparse.Namespace) -> None:
    threads = configure_cpu(args.threads)
    annotator = Annotator.from_model_file(args.model, args.device, args.settings, args.job)
    start, start_name = None, "no segmentation"
    if args.start_model:
        model_file = open_model(args.start_model)
        model = load_model(model_file).to(annotator.device)
        start = CaseSegmenter(model_file.settings, sliding_window_logits(model, model_file.settings, annotator.device))
        start_name = f"the segmentation of `{args.start_model}` ({model_file.kind})"
    sites = site_cases(args)
    print(f"{PREFIX} {sum(map(len, sites.values()))} case(s) of {len(sites)} site(s), {args.clicks} clicks", flush=True)
    result = {
        "command": "fedbrats clicks " + " ".join(shlex.quote(a) for a in sys.argv[2:]),
        "model": args.model,
        "split": args.split,
        "start": start_name,
        "clicks": args.clicks,
        "thresholds": list(THRESHOLDS),
        "threads": threads if annotator.device.type == "cpu" else torch.get_num_threads(),
        "device": str(annotator.device),
        "date": time.strftime("%Y-%m-%d"),
        "sites": evaluate_clicks(annotator, sites, args.clicks, start),
    }
    for folder, name in ((args.out, "clicks"), (args.docs, args.name)):
        if folder:
            paths = write(result, folder, name)
            print(f"{PREFIX} written {', '.join(paths.values())}")
    print(markdown(result, "clicks.png"))

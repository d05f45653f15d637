"""``fedbrats annotate``: correct a case's segmentation with clicks through an interactive model; ``--serve`` does
the same in a local web page.

A click is ``REGION:+|-:I,J,K``: a region (TC, WT, ET), positive (inside it) or negative (outside), at voxel
indices on the case's grid as stored; ``--click-world`` takes ``X,Y,Z`` in mm, mapped through the case's affine;
``--clicks FILE.json`` holds a list of ``{"region", "positive", "voxel": [i, j, k]}`` or ``{..., "world": [x, y,
z]}``. The corrected segmentation is written in BraTS labels on the grid of the case's T1c.
"""

import argparse
import os
from typing import List, Sequence

import numpy as np

from fedbrats.evaluation.annotator import Annotator
from fedbrats.evaluation.infer import files_case
from fedbrats.evaluation.segmenter import write_labels
from fedbrats.prepare.check_data import find_datalist
from fedbrats.runners.annotate_server import Session, make_server
from fedbrats.runners.annotation import (
    PREFIX,
    CaseFiles,
    click_from_text,
    datalist_case,
    grid_of,
    inside,
    label_counts,
    load_images,
    read_clicks_file,
    read_start,
)
from fedbrats.runtime.errors import BratsDataError
from fedbrats.runtime.interactive.clicks import Click


def collect_case(args: argparse.Namespace) -> CaseFiles:
    if args.datalist:
        if not (args.data_root and args.case):
            raise SystemExit("fedbrats annotate: --datalist needs --data-root and --case")
        return datalist_case(args.data_root, find_datalist(args.datalist, args.data_root), args.case)
    if args.images:
        found = files_case(args.images, args.case)
        return CaseFiles(found["case"], found["image"])
    raise SystemExit("fedbrats annotate: give the case: --datalist with --data-root and --case, or --images")


def collect_clicks(args: argparse.Namespace, case: CaseFiles, shape: Sequence[int], affine) -> List[Click]:
    """Every click of the arguments (voxel, world, then file), each checked against the volume."""
    given = [(click_from_text(t, affine, world=False), t) for t in args.click or []]
    given += [(click_from_text(t, affine, world=True), t) for t in args.click_world or []]
    if args.clicks:
        given += read_clicks_file(args.clicks, affine)
    return [inside(click, shape, case, text) for click, text in given]


def refuse_existing(path: str, force: bool) -> None:
    if os.path.exists(path) and not force:
        raise BratsDataError("output exists; --force overwrites it", path=path)


def open_annotator(args: argparse.Namespace) -> Annotator:
    """The interactive model of the arguments' model file, its settings found as ``fedbrats infer`` finds them."""
    return Annotator.from_model_file(args.model, device=args.device, settings=args.settings, job=args.job)


def annotate(args: argparse.Namespace) -> str:
    """Segment the case with its clicks and write the labels to ``--out``; returns the path written."""
    if not args.out:
        raise SystemExit("fedbrats annotate: --out is needed (or --serve)")
    case = collect_case(args)
    shape, affine = grid_of(case)
    clicks = collect_clicks(args, case, shape, affine)
    if not clicks:
        raise SystemExit("fedbrats annotate: give clicks: --click, --click-world or --clicks")
    start = read_start(args.start, case, shape, affine) if args.start else None
    refuse_existing(args.out, args.force)
    load_images(case)
    annotator = open_annotator(args)
    labels = annotator.segment(annotator.load_case(case.images, case.case), clicks, start)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    write_labels(np.asarray(labels, dtype=np.uint8), case.images[0], args.out)
    print(f"{PREFIX} {case.case}: {len(clicks)} click(s), {label_counts(labels)}; written to {args.out}")
    return args.out


def serve_case(args: argparse.Namespace) -> None:
    """``fedbrats annotate --serve``: the page of the arguments' case until interrupted."""
    case = collect_case(args)
    shape, affine = grid_of(case)
    start = read_start(args.start, case, shape, affine) if args.start else None
    session = Session(case, open_annotator(args), start, args.out)
    server = make_server(session, args.host, args.port)
    host, port = server.server_address[:2]
    print(
        f"{PREFIX} {case.case}: http://{host}:{port}/ (Ctrl+C stops); saves to {session.save_target()[0]}", flush=True
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="an interactive model file (job brats_deepgrow)")
    parser.add_argument("--settings", help="training settings JSON, or a job's config_fed_client.json")
    parser.add_argument("--job", help="job folder, simulator workspace or job result holding the job's config")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--datalist", help="the site's datalist holding --case (with --data-root)")
    source.add_argument("--images", nargs=4, metavar=("T1C", "T1", "T2", "FLAIR"), help="the four modality files")
    parser.add_argument("--data-root", help="data root of --datalist")
    parser.add_argument("--case", help="case id in --datalist; the name of --images (default: from the T1c file)")
    parser.add_argument("--start", help="starting segmentation in BraTS labels on the case's grid (e.g. from infer)")
    parser.add_argument(
        "--click", action="append", metavar="REGION:+|-:I,J,K", help="a click at voxel indices (repeatable)"
    )
    parser.add_argument(
        "--click-world", action="append", metavar="REGION:+|-:X,Y,Z", help="a click at a position in mm (repeatable)"
    )
    parser.add_argument("--clicks", metavar="FILE.json", help="clicks from a JSON list")
    parser.add_argument("--out", help="the corrected label file (.nii.gz)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing --out")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--serve", action="store_true", help="annotate in a local web page")
    parser.add_argument("--host", default="127.0.0.1", help="address of the page (127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8765, help="port of the page")


def run(args: argparse.Namespace) -> None:
    if args.serve:
        serve_case(args)
    else:
        annotate(args)

"""``fedbrats infer``: segment cases with a trained model; one ``<case>_seg.nii.gz`` per case on its own grid.

Cases come from a datalist split (with its data root), from case folders in the BraTS layout
(``<case>/<case>_t1ce.nii.gz``, ``_t1``, ``_t2``, ``_flair``), from four modality files, or from 4D images in the
MSD Task01 layout. A case in the BraTS layout gets BraTS labels {0, 1, 2, 4}, one in the MSD layout MSD's {0, 1, 2, 3}.
"""

import argparse
import glob
import os
import time
from typing import Dict, List, Optional, Sequence

from fedbrats.evaluation.model_files import add_model_arguments, load_model, open_model
from fedbrats.evaluation.segmenter import CaseSegmenter, write_labels
from fedbrats.prepare.check_data import find_datalist
from fedbrats.runtime.constants import MODALITIES, MSD_FORMAT, SPLITS
from fedbrats.runtime.data.datalist import entry_problem, image_files, read_datalist, resolve_images, split_entries
from fedbrats.runtime.data.msd import entry_format, file_case_name, is_msd, label_values, to_msd_labels
from fedbrats.runtime.engine import configure_cpu, select_device
from fedbrats.runtime.errors import BratsDataError
from fedbrats.runtime.model import sliding_window_logits

PREFIX = "[infer]"
SUFFIX = "_seg.nii.gz"
NIFTI = (".nii.gz", ".nii")


def datalist_cases(datalist: str, data_root: str, split: str) -> List[Dict[str, object]]:
    """Cases of a datalist split (their labels, if listed, are not read)."""
    if not os.path.isdir(data_root):
        raise BratsDataError("data root is not a folder", path=data_root)
    cases = []
    for i, entry in enumerate(split_entries(read_datalist(datalist), split, datalist)):
        problem = entry_problem(entry, i, split, datalist, require_label=False)
        if problem is not None:
            raise problem
        cases.append(resolve_images(entry, data_root))
    return cases


def folder_case(folder: str) -> Dict[str, object]:
    """The case in a BraTS-layout folder: ``<case>_<modality>.nii.gz`` for every modality."""
    case = os.path.basename(os.path.normpath(folder))
    if not os.path.isdir(folder):
        raise BratsDataError("case folder not found", case=case, path=folder)
    images = []
    for modality in MODALITIES:
        found = [p for ext in NIFTI for p in sorted(glob.glob(os.path.join(glob.escape(folder), f"*_{modality}{ext}")))]
        if len(found) != 1:
            what = "no file" if not found else f"{len(found)} files"
            raise BratsDataError(f"{what} named *_{modality}.nii.gz for {modality}", case=case, path=folder)
        images.append(os.path.abspath(found[0]))
    return {"case": case, "image": images}


def files_case(paths: Sequence[str], case: Optional[str] = None) -> Dict[str, object]:
    """A case given as its four modality files (T1c, T1, T2, FLAIR); its name defaults to the T1c file's."""
    name = case
    if not name:
        name = os.path.basename(paths[0])
        ext = next(e for e in (f"_{MODALITIES[0]}.nii.gz", f"_{MODALITIES[0]}.nii") + NIFTI + ("",) if name.endswith(e))
        name = name[: len(name) - len(ext)]
    for path in paths:
        if not os.path.isfile(path):
            raise BratsDataError("file not found", case=name, path=path)
    return {"case": name, "image": [os.path.abspath(p) for p in paths]}


def msd_case(path: str) -> Dict[str, object]:
    """A case given as its 4D image in the MSD Task01 layout (FLAIR, T1w, T1gd, T2w), named after the file."""
    case = file_case_name(path)
    if not os.path.isfile(path):
        raise BratsDataError("file not found", case=case, path=path)
    return {"case": case, "format": MSD_FORMAT, "image": os.path.abspath(path)}


def collect_cases(args: argparse.Namespace) -> List[Dict[str, object]]:
    if args.datalist:
        if not args.data_root:
            raise SystemExit("fedbrats infer: --datalist needs --data-root")
        cases = datalist_cases(find_datalist(args.datalist, args.data_root), args.data_root, args.split)
    elif args.case_dir:
        cases = [folder_case(folder) for folder in args.case_dir]
    elif args.msd_images:
        cases = [msd_case(path) for path in args.msd_images]
    elif args.images:
        cases = [files_case(args.images, args.case)]
    else:
        raise SystemExit("fedbrats infer: give the cases: --datalist, --case-dir, --images or --msd-images")
    names = [c["case"] for c in cases]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise BratsDataError(f"several cases are named {duplicates}: their outputs would overwrite each other")
    return cases


def infer(args: argparse.Namespace, cases: Optional[List[Dict[str, object]]] = None) -> List[str]:
    """Segment every case (the arguments' cases unless resolved ``cases`` are given); returns the written paths."""
    cases = collect_cases(args) if cases is None else cases
    model_file = open_model(args.model, args.settings, args.job)
    device = select_device(args.device)
    if device.type == "cpu":
        configure_cpu(args.threads)
    model = load_model(model_file).to(device)
    settings = model_file.settings.replace(
        amp=model_file.settings.amp and not args.no_amp, sw_batch_size=args.sw_batch_size
    )
    segment = CaseSegmenter(settings, sliding_window_logits(model, settings, device))
    print(
        f"{PREFIX} {model_file.kind} {model_file.path}; settings from {model_file.settings_source}; "
        f"{settings.pixdim:g} mm voxels, window {list(settings.window)}; device {device}"
        f"{', AMP' if settings.amp and device.type == 'cuda' else ''}; {len(cases)} case(s)",
        flush=True,
    )
    os.makedirs(args.out, exist_ok=True)
    written, start = [], time.time()
    for i, case in enumerate(cases, 1):
        case_start = time.time()
        labels = segment(case)
        values = label_values(entry_format(case))
        if is_msd(case):
            labels = to_msd_labels(labels)
        path = os.path.join(args.out, f"{case['case']}{SUFFIX}")
        write_labels(labels, image_files(case)[0], path, values)
        written.append(path)
        counts = ", ".join(f"label {v}: {int((labels == v).sum())}" for v in values[1:])
        print(f"{PREFIX} {i}/{len(cases)} {case['case']}: {time.time() - case_start:.1f} s ({counts})", flush=True)
    seconds = time.time() - start
    print(f"{PREFIX} {len(written)} segmentation(s) in {seconds:.0f} s written to {os.path.abspath(args.out)}")
    return written


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--datalist", help="datalist whose --split cases to segment (with --data-root)")
    source.add_argument("--case-dir", nargs="+", help="case folder(s) in the BraTS layout")
    source.add_argument("--images", nargs=4, metavar=("T1C", "T1", "T2", "FLAIR"), help="the four modality files")
    source.add_argument(
        "--msd-images", nargs="+", metavar="IMAGE", help="4D image(s) in the MSD Task01 layout (FLAIR, T1w, T1gd, T2w)"
    )
    parser.add_argument("--data-root", help="data root of --datalist")
    parser.add_argument("--split", default="testing", choices=SPLITS, help="datalist split (testing)")
    parser.add_argument("--case", help="case name of --images (default: from the T1c file name)")
    parser.add_argument("--out", required=True, help="output folder for <case>_seg.nii.gz")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: one per core)")
    parser.add_argument("--sw-batch-size", type=int, help="sliding windows per forward pass (default: the settings')")
    parser.add_argument("--no-amp", action="store_true", help="full precision on CUDA")


def run(args: argparse.Namespace) -> None:
    infer(args)


def main(argv: Sequence[str], cases: Optional[List[Dict[str, object]]] = None) -> List[str]:
    """``fedbrats infer`` with these arguments, raising on bad input (what a bundle's ``inference.json`` runs);
    ``cases`` (resolved datalist entries) replace the arguments' source of cases."""
    parser = argparse.ArgumentParser(prog="fedbrats infer")
    add_arguments(parser)
    return infer(parser.parse_args(list(argv)), cases)

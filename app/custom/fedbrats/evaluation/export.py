"""``fedbrats export``: a trained model as TorchScript and ONNX for other inference engines, checked against PyTorch.

The exported graph is the segmentation branch alone (SegResNetVAE in eval mode, whose ``(logits, None)`` becomes
``logits``): input ``image`` (batch, 4, x, y, z), the channels T1c, T1, T2, FLAIR preprocessed as ``fedbrats infer``
does (RAS, ``pixdim`` voxels, z-score over non-zero voxels per channel); output ``logits`` (batch, 3, x, y, z), the
regions TC, WT, ET, where sigmoid > 0.5 (logit > 0) marks a region. Batch and spatial size are free, the spatial
sizes multiples of 8. TorchScript comes from ``torch.jit.trace``, ONNX from torch's TorchScript-based exporter (opset
17, dynamic axes). Each export is run on a synthetic input beside PyTorch (ONNX in onnxruntime on the CPU); the
largest difference of logits, the Dice of the thresholded regions and the median CPU time per pass go to
``export.json`` beside the exported files.
"""

import argparse
import contextlib
import importlib
import inspect
import os
import time
import warnings
from typing import Dict, Optional, Sequence

import monai
import torch

from fedbrats.evaluation.export_check import MAX_ABS_DIFF, Runner, compare, median_seconds, synthetic_input
from fedbrats.evaluation.model_files import add_model_arguments, load_model, open_model
from fedbrats.runtime.constants import REGIONS
from fedbrats.runtime.data.datalist import write_json
from fedbrats.runtime.engine import configure_cpu
from fedbrats.runtime.settings import TrainSettings

PREFIX = "[export]"
FORMATS = {"torchscript": "model.ts", "onnx": "model.onnx"}
"""Export format -> file written into the output folder."""
EXPORT_JSON = "export.json"
ONNX_OPSET = 17
ONNX_AXES = {0: "batch", 2: "x", 3: "y", 4: "z"}
"""Dynamic axes of the ONNX graph's input and output."""


class SegmentationOnly(torch.nn.Module):
    """The network's segmentation logits alone, in eval mode."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model.eval()

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model(image)[0]


def size_multiple(settings: TrainSettings) -> int:
    """Spatial sizes must be multiples of this: the network halves the volume once per level below the first."""
    return 2 ** (len(settings.blocks_down) - 1)


def onnx_modules():
    """``onnx`` and ``onnxruntime``, with a clear message when they are not installed."""
    try:
        return importlib.import_module("onnx"), importlib.import_module("onnxruntime")
    except ImportError as e:
        raise SystemExit(
            f"fedbrats export: ONNX needs onnx and onnxruntime ({e}); pip install 'fedbrats[export]'"
        ) from None


def torch_runner(module: torch.nn.Module) -> Runner:
    @torch.no_grad()
    def run(image):
        return module(torch.from_numpy(image)).numpy()

    return run


@contextlib.contextmanager
def quiet_tracing():
    """Hide what tracing warns about and the exports do not depend on: recent torch releases call TorchScript and the
    TorchScript-based ONNX exporter deprecated, and group norm's check that a channel holds more than one value
    becomes a constant of the trace (the graphs are checked on other sizes by the tests)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", "Converting a tensor to a Python boolean", torch.jit.TracerWarning)
        yield


def export_torchscript(net: torch.nn.Module, example, path: str, threads: int) -> Runner:
    """Trace ``net`` on ``example``, save it and return the saved file's runner."""
    with quiet_tracing(), torch.no_grad():
        torch.jit.trace(net, torch.from_numpy(example)).save(path)
        loaded = torch.jit.load(path, map_location="cpu").eval()
    return torch_runner(loaded)


def export_onnx(net: torch.nn.Module, example, path: str, threads: int) -> Runner:
    """Export ``net`` to ONNX with dynamic batch and spatial axes, check the file and return its onnxruntime runner."""
    onnx, onnxruntime = onnx_modules()
    legacy = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    with quiet_tracing():
        torch.onnx.export(
            net,
            (torch.from_numpy(example),),
            path,
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": ONNX_AXES, "logits": ONNX_AXES},
            opset_version=ONNX_OPSET,
            **legacy,
        )
    onnx.checker.check_model(path)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    return lambda image: session.run(None, {"image": image})[0]


EXPORTERS = {"torchscript": export_torchscript, "onnx": export_onnx}


def versions(formats: Sequence[str]) -> Dict[str, str]:
    out = {"torch": torch.__version__, "monai": monai.__version__}
    if "onnx" in formats:
        onnx, onnxruntime = onnx_modules()
        out.update(onnx=onnx.__version__, onnxruntime=onnxruntime.__version__)
    return out


def export_model(
    model: str,
    out: str,
    formats: Sequence[str] = tuple(FORMATS),
    settings: Optional[str] = None,
    job: Optional[str] = None,
    size: Optional[Sequence[int]] = None,
    repeats: int = 3,
    threads: int = 0,
    seed: int = 0,
) -> dict:
    """Export ``model`` into ``out`` in every format, compare and time each against PyTorch; returns export.json."""
    model_file = open_model(model, settings, job)
    size = tuple(int(s) for s in (size or model_file.settings.window))
    multiple = size_multiple(model_file.settings)
    if len(size) != 3 or any(s < multiple or s % multiple for s in size):
        raise SystemExit(f"fedbrats export: the input size must be 3 multiples of {multiple}, got {list(size)}")
    threads = configure_cpu(threads)
    net = SegmentationOnly(load_model(model_file))
    image = synthetic_input(size, seed)
    reference_run = torch_runner(net)
    reference = reference_run(image)
    result = {
        "model": os.path.abspath(model_file.path),
        "kind": model_file.kind,
        "settings_source": model_file.settings_source,
        "init_filters": model_file.settings.init_filters,
        "input": {"shape": list(image.shape), "kind": f"standard normal, seed {seed}"},
        "output": "logits (batch, TC/WT/ET, x, y, z); sigmoid > 0.5 marks a region",
        "device": "cpu",
        "threads": threads,
        "repeats": repeats,
        "max_abs_diff_allowed": MAX_ABS_DIFF,
        "versions": versions(formats),
        "pytorch": {"seconds": median_seconds(reference_run, image, repeats)},
    }
    shape = "x".join(map(str, image.shape))
    print(f"{PREFIX} pytorch: {result['pytorch']['seconds']:.3f} s per pass (input {shape}, {threads} thread(s))")
    os.makedirs(out, exist_ok=True)
    for fmt in formats:
        path = os.path.join(out, FORMATS[fmt])
        start = time.time()
        run = EXPORTERS[fmt](net, image, path, threads)
        exported = {"file": FORMATS[fmt], "bytes": os.path.getsize(path), "export_seconds": time.time() - start}
        exported.update(compare(run(image), reference))
        exported["seconds"] = median_seconds(run, image, repeats)
        if fmt == "onnx":
            exported.update(opset=ONNX_OPSET, runtime="onnxruntime, CPUExecutionProvider", dynamic_axes=ONNX_AXES)
        result[fmt] = exported
        dice = " ".join(f"{r} {v:.6g}" for r, v in zip(REGIONS, exported["dice"].values()))
        print(
            f"{PREFIX} {fmt}: {exported['seconds']:.3f} s per pass; max |logit difference| "
            f"{exported['max_abs_diff']:.2e}, Dice {dice}, {exported['differing_voxels']} voxel(s) differ "
            f"-> {os.path.abspath(path)}"
        )
    result["matches"] = all(result[fmt]["matches"] for fmt in formats)
    write_json(os.path.join(out, EXPORT_JSON), result)
    print(f"{PREFIX} {os.path.abspath(os.path.join(out, EXPORT_JSON))}")
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--out", required=True, help="output folder for the exported files and export.json")
    parser.add_argument("--format", nargs="+", choices=sorted(FORMATS), default=list(FORMATS), dest="formats")
    parser.add_argument(
        "--input-size", type=int, nargs=3, metavar=("X", "Y", "Z"), help="check input size (default: the window)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per runtime, after one warm-up (3)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: one per core)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic check input")


def run(args: argparse.Namespace) -> int:
    """Exit code 1 when an export's logits differ from PyTorch's by more than MAX_ABS_DIFF."""
    result = export_model(
        args.model,
        args.out,
        args.formats,
        args.settings,
        args.job,
        args.input_size,
        args.repeats,
        args.threads,
        args.seed,
    )
    if not result["matches"]:
        print(f"{PREFIX} an export differs from PyTorch by more than {MAX_ABS_DIFF:g}", flush=True)
        return 1
    return 0

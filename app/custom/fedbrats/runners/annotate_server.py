"""The local web page of ``fedbrats annotate --serve``: a case slice by slice, its segmentation, clicks that run the
interactive model, and saving the label into the site's data.

Slices travel as raw bytes, one byte a pixel, in display order: rows from the last ``j`` to the first, columns
``i``, of the axial slice ``k`` (the page maps a pixel back as ``i = column``, ``j = rows - 1 - row``).
"""

import json
import os
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List, Optional, Tuple
from urllib.parse import parse_qs, urlparse

import numpy as np

from fedbrats.evaluation.segmenter import write_labels
from fedbrats.prepare.profiles import TITLES
from fedbrats.runners.annotation import (
    LABEL_FILE,
    PREFIX,
    CaseFiles,
    find_entry,
    grid_of,
    inside,
    label_counts,
    load_images,
    parse_region,
)
from fedbrats.runtime.constants import BRATS_LABELS, CLICK_REGIONS, MODALITIES
from fedbrats.runtime.data.datalist import read_datalist, write_json
from fedbrats.runtime.errors import BratsDataError
from fedbrats.runtime.interactive.clicks import Click

PAGE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "annotate_page")
PAGE_FILES = {"/": ("index.html", "text/html"), "/annotate.js": ("annotate.js", "text/javascript")}
LABEL_STYLE = {1: ("necrotic and non-enhancing core", "#e8412c"), 2: ("oedema", "#3cc84b"), 4: ("enhancing", "#f5d800")}
"""Name and overlay colour of each tumour label of BRATS_LABELS."""
MAX_BODY = 4096


def display_window(volume: np.ndarray) -> np.ndarray:
    """A modality as uint8 grey, its non-zero voxels' 0.5th to 99.5th percentiles stretched to 0 to 255."""
    nonzero = volume[volume != 0]
    low, high = np.percentile(nonzero, (0.5, 99.5)) if nonzero.size else (0.0, 1.0)
    scaled = (volume.astype(np.float32) - low) / max(float(high - low), 1e-6)
    return (np.clip(scaled, 0, 1) * 255).astype(np.uint8)


def display_slice(volume: np.ndarray, k: int) -> bytes:
    """Axial slice ``k`` in display order (see the module's note)."""
    return np.ascontiguousarray(volume[:, ::-1, k].T).tobytes()


class Session:
    """One case being annotated: its clicks so far and the labels they give; every change holds the lock."""

    def __init__(self, case: CaseFiles, annotator, start: Optional[np.ndarray], out: Optional[str] = None):
        self.case = case
        self.annotator = annotator
        self.shape, self.affine = grid_of(case)
        self.grey = [display_window(channel) for channel in load_images(case)]
        self.loaded = annotator.load_case(case.images, case.case)
        self.start = start
        self.labels = self.first_labels()
        self.clicks: List[Click] = []
        self.out = out
        self.version = 0
        self.lock = threading.Lock()

    def first_labels(self) -> np.ndarray:
        return np.zeros(self.shape, np.uint8) if self.start is None else self.start.copy()

    def info(self) -> dict:
        return {
            "case": self.case.case,
            "shape": list(self.shape),
            "modalities": [{"name": m, "title": TITLES[m]} for m in MODALITIES],
            "regions": list(CLICK_REGIONS),
            "labels": [{"value": v, "name": LABEL_STYLE[v][0], "colour": LABEL_STYLE[v][1]} for v in BRATS_LABELS[1:]],
            "save_to": self.save_target()[0],
            **self.state(),
        }

    def state(self, changed: int = 0) -> dict:
        clicks = [{"voxel": list(c.position), "positive": c.positive, "region": c.region} for c in self.clicks]
        counts = {str(v): int((self.labels == v).sum()) for v in BRATS_LABELS[1:]}
        return {"version": self.version, "clicks": clicks, "counts": counts, "changed": changed}

    def grey_slice(self, modality: str, k: int) -> bytes:
        return display_slice(self.grey[MODALITIES.index(modality)], k)

    def label_slice(self, k: int) -> bytes:
        return display_slice(self.labels, k)

    def resegment(self) -> dict:
        before = self.labels
        if self.clicks:
            self.labels = np.asarray(self.annotator.segment(self.loaded, list(self.clicks), self.start), np.uint8)
        else:
            self.labels = self.first_labels()
        self.version += 1
        return self.state(int((before != self.labels).sum()))

    def click(self, body: dict) -> dict:
        """Add a click (``{"voxel": [i, j, k], "positive", "region"}``) and segment with every click so far."""
        voxel = body.get("voxel")
        if not (isinstance(voxel, list) and len(voxel) == 3 and all(isinstance(v, int) for v in voxel)):
            raise BratsDataError(f'a click is {{"voxel": [i, j, k], "positive": true|false, "region"}}, got {body}')
        text = f"{body.get('region')}:{'+' if body.get('positive') else '-'}:{','.join(map(str, voxel))}"
        click = Click(
            position=tuple(voxel),
            positive=bool(body.get("positive")),
            region=parse_region(str(body.get("region")), text),
        )
        with self.lock:
            self.clicks.append(inside(click, self.shape, self.case, text))
            return self.resegment()

    def undo(self) -> dict:
        with self.lock:
            if self.clicks:
                self.clicks.pop()
            return self.resegment()

    def clear(self) -> dict:
        with self.lock:
            self.clicks.clear()
            return self.resegment()

    def save_target(self) -> Tuple[str, Optional[str]]:
        """(absolute path of the label to write, its path in the datalist or None for a case outside a datalist)."""
        case = self.case
        default = LABEL_FILE.format(case=case.case)
        if case.datalist is None:
            return os.path.abspath(self.out or os.path.join(os.path.dirname(case.images[0]), default)), None
        _, _, entry = find_entry(case.datalist, case.case)
        rel = entry.get("label") or os.path.join(os.path.dirname(entry["image"][0]), default)
        root = os.path.realpath(case.data_root)
        path = os.path.realpath(os.path.join(root, rel))
        if os.path.commonpath([root, path]) != root:
            raise BratsDataError(f"the label's path escapes the data root {root}", case=case.case, path=rel)
        return path, rel

    def save(self, overwrite: bool) -> Tuple[int, dict]:
        """Write the labels and list them in the case's datalist entry; 409 when the label exists and not
        ``overwrite``."""
        with self.lock:
            path, rel = self.save_target()
            if os.path.exists(path) and not overwrite:
                return HTTPStatus.CONFLICT, {"exists": path, "error": f"{path} exists; confirm to overwrite it"}
            os.makedirs(os.path.dirname(path), exist_ok=True)
            write_labels(self.labels, self.case.images[0], path)
            if rel is not None:
                self.list_label(rel)
            print(f"{PREFIX} {self.case.case}: {label_counts(self.labels)}; saved to {path}", flush=True)
            return HTTPStatus.OK, {"path": path, "datalist": self.case.datalist}

    def list_label(self, rel: str) -> None:
        """Set the label of the case's datalist entry, leaving every other entry as it is."""
        data = read_datalist(self.case.datalist)
        split, index, _ = find_entry(self.case.datalist, self.case.case)
        data[split][index]["label"] = rel
        write_json(self.case.datalist, data)


class Handler(BaseHTTPRequestHandler):
    """The page's files and its API: ``GET /api/case``, ``/api/slice?modality=M&k=K``, ``/api/labels?k=K``;
    ``POST /api/click``, ``/api/undo``, ``/api/clear``, ``/api/save`` (JSON bodies only)."""

    session: Session

    def log_message(self, format, *args) -> None:
        pass

    def reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def reply_json(self, status: int, data: dict) -> None:
        self.reply(status, json.dumps(data).encode(), "application/json")

    def slice_index(self, query: Dict[str, List[str]]) -> int:
        k = int(query.get("k", ["-1"])[0])
        if not 0 <= k < self.session.shape[2]:
            raise BratsDataError(f"slice {k} outside 0 to {self.session.shape[2] - 1}")
        return k

    def do_GET(self) -> None:
        url = urlparse(self.path)
        query = parse_qs(url.query)
        try:
            if url.path in PAGE_FILES:
                name, content_type = PAGE_FILES[url.path]
                with open(os.path.join(PAGE_DIR, name), "rb") as f:
                    self.reply(HTTPStatus.OK, f.read(), f"{content_type}; charset=utf-8")
            elif url.path == "/api/case":
                self.reply_json(HTTPStatus.OK, self.session.info())
            elif url.path == "/api/slice":
                modality = query.get("modality", [MODALITIES[0]])[0]
                if modality not in MODALITIES:
                    raise BratsDataError(f"unknown modality {modality!r}; valid: {', '.join(MODALITIES)}")
                self.reply(
                    HTTPStatus.OK,
                    self.session.grey_slice(modality, self.slice_index(query)),
                    "application/octet-stream",
                )
            elif url.path == "/api/labels":
                self.reply(HTTPStatus.OK, self.session.label_slice(self.slice_index(query)), "application/octet-stream")
            else:
                self.reply_json(HTTPStatus.NOT_FOUND, {"error": f"no {url.path}"})
        except (BratsDataError, ValueError) as e:
            self.reply_json(HTTPStatus.BAD_REQUEST, {"error": str(e)})

    def read_body(self) -> dict:
        """The JSON body; refusing other content types keeps other web sites' forms out (they cannot send JSON
        without the page's consent)."""
        if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
            raise BratsDataError("requests carry JSON (Content-Type: application/json)")
        length = int(self.headers.get("Content-Length", 0))
        if length > MAX_BODY:
            raise BratsDataError(f"request of {length} bytes; at most {MAX_BODY}")
        body = json.loads(self.rfile.read(length) or b"{}")
        if not isinstance(body, dict):
            raise BratsDataError("a request's body is a JSON object")
        return body

    def do_POST(self) -> None:
        path = urlparse(self.path).path
        actions = {
            "/api/click": lambda body: (HTTPStatus.OK, self.session.click(body)),
            "/api/undo": lambda body: (HTTPStatus.OK, self.session.undo()),
            "/api/clear": lambda body: (HTTPStatus.OK, self.session.clear()),
            "/api/save": lambda body: self.session.save(body.get("overwrite") is True),
        }
        if path not in actions:
            self.reply_json(HTTPStatus.NOT_FOUND, {"error": f"no {path}"})
            return
        try:
            status, data = actions[path](self.read_body())
        except (BratsDataError, ValueError) as e:
            status, data = HTTPStatus.BAD_REQUEST, {"error": str(e)}
        self.reply_json(status, data)


def make_server(session: Session, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """A threaded HTTP server of the page for ``session`` (``port`` 0: a free one); not yet serving."""
    handler = type("SessionHandler", (Handler,), {"session": session})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server

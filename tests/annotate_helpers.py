"""A site with one case left unlabelled, and a stand-in of the interactive model, for the tests of ``annotate``."""

import json
import os
import threading
from contextlib import contextmanager

import nibabel as nib
import numpy as np
from builders import write_site

from fedbrats.runners.annotate_server import make_server
from fedbrats.runtime.data.datalist import case_name

UNLABELLED = "Case_003"
REGION_VALUE = {"tc": 1, "wt": 2, "et": 4}


def site_with_unlabelled_case(root):
    """A tiny site whose testing case ``Case_003`` has no label; returns the datalist's path."""
    datalist = write_site(str(root), n_train=1, n_val=1, n_test=1)
    with open(datalist) as f:
        data = json.load(f)
    entry = next(e for e in data["testing"] if case_name(e) == UNLABELLED)
    os.remove(os.path.join(str(root), entry.pop("label")))
    with open(datalist, "w") as f:
        json.dump(data, f)
    return datalist


@contextmanager
def serving(session):
    """The page's server of ``session`` on a free local port, in a thread, until the block ends."""
    server = make_server(session)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


class StandInAnnotator:
    """Segments by painting a ball of the click's region label (or background) around each click."""

    def load_case(self, image_files, name="case"):
        return {"shape": nib.load(image_files[0]).shape[:3]}

    def segment(self, case, clicks, start=None):
        labels = np.zeros(case["shape"], np.uint8) if start is None else start.copy()
        grid = np.stack(np.meshgrid(*[np.arange(s) for s in case["shape"]], indexing="ij"))
        for click in clicks:
            ball = ((grid - np.array(click.position)[:, None, None, None]) ** 2).sum(0) <= 4
            labels[ball] = REGION_VALUE[click.region] if click.positive else 0
        return labels

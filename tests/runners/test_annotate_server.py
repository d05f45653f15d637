"""The API of ``fedbrats annotate --serve`` without a browser: slices in display order, clicks checked and
segmented, undo, saving into the site's data that refuses to overwrite unless asked."""

import json
import os
import urllib.error
import urllib.request

import numpy as np
import pytest
from annotate_helpers import UNLABELLED, StandInAnnotator, serving, site_with_unlabelled_case

from fedbrats.prepare.check_data import check_datalist
from fedbrats.runners.annotate_server import Session, display_slice
from fedbrats.runners.annotation import datalist_case


@pytest.fixture
def site(tmp_path):
    root = tmp_path / "data"
    return str(root), site_with_unlabelled_case(root)


@pytest.fixture
def url(site):
    root, datalist = site
    with serving(Session(datalist_case(root, datalist, UNLABELLED), StandInAnnotator(), None)) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}"


def call(url, path, body=None, content_type="application/json"):
    """(status, body) of a GET, or of a POST of ``body`` as JSON."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_display_order_is_rows_from_the_last_j_and_columns_i():
    volume = np.arange(2 * 3 * 1).reshape(2, 3, 1).astype(np.uint8)
    shown = np.frombuffer(display_slice(volume, 0), np.uint8).reshape(3, 2)
    assert shown[0, 1] == volume[1, 2, 0] and shown[2, 0] == volume[0, 0, 0]


def test_clicks_segment_undo_and_save_once_unless_asked(url, site):
    root, datalist = site
    status, body = call(url, "/api/case")
    info = json.loads(body)
    assert status == 200 and info["case"] == UNLABELLED and info["shape"] == [32, 32, 32]
    assert info["regions"] == ["tc", "wt", "et"] and [m["title"] for m in info["modalities"]] == [
        "T1c",
        "T1",
        "T2",
        "FLAIR",
    ]
    assert len(call(url, "/api/slice?modality=flair&k=16")[1]) == 32 * 32

    status, body = call(url, "/api/click", {"voxel": [16, 10, 16], "positive": True, "region": "et"})
    assert status == 200 and json.loads(body)["changed"] > 0
    labels = np.frombuffer(call(url, "/api/labels?k=16")[1], np.uint8).reshape(32, 32)
    assert labels[31 - 10, 16] == 4
    assert json.loads(call(url, "/api/undo", {})[1])["clicks"] == []
    call(url, "/api/click", {"voxel": [16, 10, 16], "positive": True, "region": "et"})

    status, body = call(url, "/api/save", {})
    assert status == 200 and check_datalist(root, datalist, say=lambda line: None)["problems"] == []
    path = json.loads(body)["path"]
    saved = os.stat(path).st_mtime_ns
    status, body = call(url, "/api/save", {"overwrite": False})
    assert status == 409 and json.loads(body)["exists"] == path and os.stat(path).st_mtime_ns == saved
    assert call(url, "/api/save", {"overwrite": True})[0] == 200


@pytest.mark.parametrize(
    "path, body, says",
    [
        ("/api/click", {"voxel": [16, 10, 32], "positive": True, "region": "et"}, "outside the volume of shape"),
        ("/api/click", {"voxel": [1, 1, 1], "positive": True, "region": "ncr"}, "valid: TC, WT, ET"),
        ("/api/slice?modality=t1&k=32", None, "slice 32 outside 0 to 31"),
        ("/api/slice?modality=dwi&k=3", None, "unknown modality 'dwi'"),
    ],
)
def test_a_bad_request_is_answered_with_what_is_wrong(url, path, body, says):
    status, answer = call(url, path, body)
    assert status == 400 and says in json.loads(answer)["error"]


def test_only_json_requests_change_anything(url):
    status, answer = call(url, "/api/save", {}, content_type="text/plain")
    assert status == 400 and "Content-Type: application/json" in json.loads(answer)["error"]

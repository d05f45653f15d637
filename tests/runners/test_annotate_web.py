"""The page of ``fedbrats annotate --serve`` in a real headless browser (Debian's Chromium through Selenium): it
shows the case, a click segments, Save writes a label that ``check-data`` accepts and asks before overwriting."""

import json
import os
import shutil

import numpy as np
import pytest
from annotate_helpers import UNLABELLED, serving, site_with_unlabelled_case
from builders import TINY_TRAINING, tumour_case

from fedbrats.evaluation.annotator import Annotator
from fedbrats.prepare.check_data import check_datalist
from fedbrats.runners.annotate_server import Session
from fedbrats.runners.annotation import datalist_case
from fedbrats.runtime.data.datalist import case_name
from fedbrats.runtime.settings import TrainSettings

pytestmark = pytest.mark.slow

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
SEED = 3
"""``Case_003`` of the tiny site is drawn with seed 3."""
TIMEOUT = 20


@pytest.fixture
def site(tmp_path):
    root = tmp_path / "data"
    return str(root), site_with_unlabelled_case(root)


@pytest.fixture
def server(site):
    root, datalist = site
    annotator = Annotator.untrained(TrainSettings.from_dict(TINY_TRAINING))
    with serving(Session(datalist_case(root, datalist, UNLABELLED), annotator, None)) as server:
        yield server


@pytest.fixture
def browser():
    if not (shutil.which(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.fail(f"{CHROMIUM} and {CHROMEDRIVER} are needed (scripts/setup.sh installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1000,760"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def wait_for(driver, attribute, value):
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, TIMEOUT).until(lambda d: d.find_element("tag name", "body").get_attribute(attribute) == value)


PIXELS = "return Array.from(document.getElementById('view').getContext('2d').getImageData(...arguments).data)"
"""The canvas's RGBA bytes of a rectangle (x, y, width, height)."""


def confirm(driver, accept):
    """Answer the page's question (it comes once the server has refused to overwrite)."""
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    alert = WebDriverWait(driver, TIMEOUT).until(expected_conditions.alert_is_present())
    alert.accept() if accept else alert.dismiss()


def pixel(driver, column, row):
    return driver.execute_script(PIXELS, int(column), int(row), 1, 1)


def click_voxel(driver, i, j, shape):
    """Click the canvas at voxel (i, j) of the slice shown (rows run from the last j to the first)."""
    from selenium.webdriver.common.action_chains import ActionChains

    view = driver.find_element("id", "view")
    width, height = view.size["width"], view.size["height"]
    x = (i + 0.5) * width / shape[0] - width / 2
    y = (shape[1] - j - 0.5) * height / shape[1] - height / 2
    ActionChains(driver).move_to_element_with_offset(view, round(x), round(y)).click().perform()


def test_the_page_shows_the_case_segments_a_click_and_saves_a_label_check_data_accepts(site, server, browser, tmp_path):
    root, datalist = site
    session = server.RequestHandlerClass.session
    shape = session.shape
    k = shape[2] // 2
    browser.get(f"http://127.0.0.1:{server.server_address[1]}/")
    wait_for(browser, "data-drawn", f"{k}:t1ce:0")
    assert browser.find_element("id", "case").text == UNLABELLED
    assert browser.find_element("id", "slice-label").text == f"{k + 1} / {shape[2]}"
    drawn = browser.execute_script(PIXELS, 0, 0, shape[0], shape[1])
    assert max(drawn) > 0, "the slice is black"

    labels = tumour_case(shape, SEED)[1]
    i, j = np.argwhere(labels[:, :, k] == 1)[0]
    row = shape[1] - 1 - j
    before = pixel(browser, i, row)
    click_voxel(browser, i, j, shape)
    wait_for(browser, "data-drawn", f"{k}:t1ce:1")
    assert session.labels[i, j, k] in (1, 4)  # tumour core
    assert pixel(browser, i, row) != before, "the overlay did not change where the click was"
    browser.save_screenshot(str(tmp_path / "annotate_page.png"))

    label = os.path.join(root, "HGG", UNLABELLED, f"{UNLABELLED}_seg.nii.gz")
    browser.find_element("id", "save").click()
    wait_for(browser, "data-saved", "1")
    assert os.path.isfile(label)
    with open(datalist) as f:
        entry = next(e for e in json.load(f)["testing"] if case_name(e) == UNLABELLED)
    assert entry["label"] == f"HGG/{UNLABELLED}/{UNLABELLED}_seg.nii.gz"
    assert check_datalist(root, datalist, say=lambda line: None)["problems"] == []

    saved = os.stat(label).st_mtime_ns
    browser.find_element("id", "save").click()
    confirm(browser, accept=False)
    wait_for(browser, "data-saved", "2")
    assert os.stat(label).st_mtime_ns == saved
    assert "not saved" in browser.find_element("id", "status").text
    browser.find_element("id", "save").click()
    confirm(browser, accept=True)
    wait_for(browser, "data-saved", "3")
    assert os.stat(label).st_mtime_ns != saved

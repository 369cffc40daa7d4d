"""The page of ``cnnlab serve`` in a real browser: Debian's Chromium, headless, by Playwright.

One real server (uvicorn on 127.0.0.1, a free port) serves three finished runs for the whole
module: a copy of the LeNet-5 digits run (the review test writes its ``relabel.csv``), the MLP
run (to compare) and the 16-bit bacteria run. Every test opens a fresh page, and every page must
end with no console errors and no request to any host but the server.

``CNNLAB_SCREENSHOT=1`` also copies the final screenshot to ``docs/serve.png`` for the README.
"""

from __future__ import annotations

import base64
import csv
import io
import math
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image
from scipy import ndimage

CHROMIUM = Path("/usr/bin/chromium")
DOCS = Path(__file__).resolve().parents[2] / "docs"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs Debian's chromium for the browser tests: apt-get install -y chromium",
)

# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def served(
    lenet_run: Path, mlp_run: Path, bacteria_run: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """``(base URL, the writable LeNet run folder)`` of a live server, stopped after the module."""
    pytest.importorskip("uvicorn")
    from cnnlab.serve import create_app
    from cnnlab.serve.server import background_server

    lenet = tmp_path_factory.mktemp("browser") / lenet_run.name
    shutil.copytree(lenet_run, lenet)
    with background_server(create_app([lenet, mlp_run, bacteria_run])) as base:
        yield base, lenet


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield browser
        browser.close()


@dataclass
class Session:
    """A page of the app with what it said and asked for along the way."""

    page: object
    base: str
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0

    def assert_clean(self) -> None:
        assert self.errors == [], f"console errors: {self.errors}"
        foreign = [url for url in self.requests if not url.startswith(self.base + "/")]
        assert foreign == [], f"requests to other hosts: {foreign}"
        assert any("/api/" in url for url in self.requests)


@pytest.fixture
def session(served: tuple[str, Path], browser) -> Iterator[Session]:
    base, _ = served
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    result = Session(page, base)

    def sent(request) -> None:
        # data: URLs are the page's own images, decoded by the browser, never sent anywhere.
        if not request.url.startswith("data:"):
            result.requests.append(request.url)
        if "/api/analyze" in request.url:
            result.in_flight += 1
            result.most_in_flight = max(result.most_in_flight, result.in_flight)

    def done(request) -> None:
        if "/api/analyze" in request.url:
            result.in_flight -= 1

    page.on("console", lambda m: m.type == "error" and result.errors.append(m.text))
    page.on("pageerror", lambda e: result.errors.append(str(e)))
    page.on("request", sent)
    page.on("requestfinished", done)
    page.on("requestfailed", done)
    page.goto(base + "/")
    page.wait_for_selector("body[data-ready=true]", state="attached")
    yield result
    context.close()


# ------------------------------------------------------------------------------- helpers


def runs(page) -> list[dict]:
    return page.evaluate("window.cnnlab.state.runs")


def settle(page) -> None:
    """Waits until the page has analysed the last state of its input."""
    page.wait_for_function(
        "() => { const t = document.querySelector('#try').dataset;"
        " return t.version !== undefined && t.analysed === t.version; }"
    )


def stroke(page, points: list[tuple[float, float]]) -> None:
    """One mouse stroke through ``points`` given in the canvas's own 280x280 pixels."""
    box = page.locator("#canvas").bounding_box()
    scale = box["width"] / 280

    def at(x: float, y: float) -> tuple[float, float]:
        return box["x"] + x * scale, box["y"] + y * scale

    page.mouse.move(*at(*points[0]))
    page.mouse.down()
    for point in points[1:]:
        page.mouse.move(*at(*point), steps=2)
    page.mouse.up()
    settle(page)


def one() -> list[tuple[float, float]]:
    return [(140, 40 + 10 * i) for i in range(21)]  # y from 40 to 240


def zero() -> list[tuple[float, float]]:
    angles = np.linspace(0, 2 * math.pi, 41)
    return [(140 + 60 * math.sin(a), 140 - 90 * math.cos(a)) for a in angles]


def bars(page, selector: str = "#bars") -> dict[str, float]:
    found = page.eval_on_selector_all(
        f"{selector} .bar", "bars => bars.map(b => [b.dataset.class, b.dataset.probability])"
    )
    return {name: float(p) for name, p in found}


def decode(data_url: str) -> np.ndarray:
    assert data_url.startswith("data:image/png;base64,"), data_url[:40]
    png = base64.b64decode(data_url.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float64)


def src(page, selector: str) -> str:
    return page.get_attribute(selector, "src") or ""


# --------------------------------------------------------------------------------- tests


def test_drawn_digits_are_recognised_and_compared(session: Session, tmp_path: Path) -> None:
    page = session.page
    lenet, mlp = runs(page)[0], runs(page)[1]
    assert lenet["digits"] and page.is_visible("#run-picker")

    stroke(page, one())
    assert page.text_content("#top-class") == "1"
    probabilities = bars(page)
    assert list(probabilities) == lenet["classes"]
    assert sum(probabilities.values()) == pytest.approx(1, abs=1e-3)
    assert max(probabilities, key=probabilities.get) == "1"
    # The model's input is the stroke centred by mass in 28x28, as MNIST digits are.
    seen = decode(src(page, "#input-preview"))
    centre = np.array(ndimage.center_of_mass(seen)) / np.array(seen.shape)
    assert np.abs(centre - 0.5).max() < 0.06, centre
    # One .layer per layer of LeNet-5, every one shown with images; Grad-CAM as big as the input.
    assert page.locator("#layers .layer").count() >= 5
    assert page.locator("#layers .layer").evaluate_all(
        "layers => layers.every(l => l.querySelectorAll('img').length > 0)"
    )
    assert decode(src(page, "#gradcam")).shape == seen.shape

    page.click("#clear")
    assert page.text_content("#top-class") == "–"
    stroke(page, zero())
    assert page.text_content("#top-class") == "0"
    # Drawing never has more than one analysis in flight.
    assert session.most_in_flight == 1

    page.select_option("#compare-picker", mlp["id"])
    settle(page)
    compared = bars(page, "#bars-compare")
    assert list(compared) == mlp["classes"]
    assert sum(compared.values()) == pytest.approx(1, abs=1e-3)
    assert compared != bars(page)  # another network, other probabilities

    shot = tmp_path / "serve.png"
    page.screenshot(path=str(shot), full_page=True)
    assert Image.open(shot).size[0] == 1200
    if os.environ.get("CNNLAB_SCREENSHOT") == "1":
        DOCS.mkdir(exist_ok=True)
        shutil.copyfile(shot, DOCS / "serve.png")
    session.assert_clean()


def test_a_16bit_tiff_is_analysed_and_shown_contrast_stretched(
    session: Session, tmp_path: Path
) -> None:
    page = session.page
    bacteria = next(run for run in runs(page) if run["bit_depth"] == 16)
    page.select_option("#run-picker", bacteria["id"])
    assert not page.is_visible("#canvas")  # drawing is for digit models only

    # A dim 16-bit cell: as 8-bit (the top byte) every pixel would be 3..11, all but black.
    y, x = np.mgrid[:28, :28]
    cell = np.exp(-(((x - 14) / 5.0) ** 2 + ((y - 14) / 9.0) ** 2))
    pixels = (1000 + 2000 * cell).astype(np.uint16)
    tiff = tmp_path / "dim cell.tif"
    tifffile.imwrite(tiff, pixels)
    page.set_input_files("#file-input", str(tiff))
    settle(page)

    assert page.text_content("#top-class") in bacteria["classes"]
    assert list(bars(page)) == bacteria["classes"]
    shown = decode(src(page, "#input-preview"))
    assert shown.max() >= 200 and shown.min() <= 50, (shown.min(), shown.max())
    # The brightest pixel shown is the brightest of the file: stretched, not thresholded.
    peak = np.array(np.unravel_index(shown.argmax(), shown.shape)) / np.array(shown.shape)
    assert np.abs(peak - 0.5).max() < 0.1, peak
    session.assert_clean()


def test_relabelled_images_are_saved_to_relabel_csv(
    session: Session, served: tuple[str, Path]
) -> None:
    page = session.page
    _, run = served
    page.click("#tab-review")
    items = page.locator("#review-list .review-item")
    items.first.wait_for()
    losses = items.evaluate_all("items => items.map(i => Number(i.dataset.loss))")
    assert losses == sorted(losses, reverse=True)  # the worst first

    chosen = []
    for index, action in enumerate(("relabel", "relabel", "exclude")):
        item = items.nth(index)
        if action == "relabel":
            new = item.locator(".relabel-as option").nth(index).get_attribute("value")
            item.locator(".relabel-as").select_option(new)
            item.locator(".relabel").click()
        else:
            new = ""
            item.locator(".exclude").click()
        page.wait_for_function(
            "([i, cls]) => document.querySelectorAll('.review-item')[i].classList.contains(cls)",
            arg=[index, f"decided-{action}"],
        )
        chosen.append(
            (item.get_attribute("data-key"), item.get_attribute("data-true"), action, new)
        )
    # An undone decision leaves the file.
    items.nth(2).locator(".undo").click()
    page.wait_for_function("() => !document.querySelectorAll('.review-item')[2].dataset.decision")

    with (run / "relabel.csv").open(newline="") as file:
        rows = list(csv.DictReader(file))
    saved = [(r["path"], r["true_class"], r["action"], r["new_class"]) for r in rows]
    assert sorted(saved) == sorted(chosen[:2])
    assert all(r["new_class"] != r["true_class"] for r in rows)
    session.assert_clean()


def test_kernels_apply_live_to_the_drawing_and_explain_the_size(session: Session) -> None:
    page = session.page
    stroke(page, one())
    # Keyboard: from the Try tab, the right arrow opens Teach.
    page.focus("#tab-try")
    page.keyboard.press("ArrowRight")
    assert page.is_visible("#teach") and not page.is_visible("#try")
    page.wait_for_function("() => document.querySelector('#kernel-output').src.startsWith('data:')")

    page.select_option("#kernel-name", "edge2")
    page.select_option("#stride", "2")
    page.select_option("#pool", "max:2")
    # (28 - 3) // 2 + 1 = 13 without padding, then 2x2 max pooling: 6.
    page.wait_for_function(
        "() => document.querySelector('#kernel-explanation').textContent.includes('6x6 out')"
    )
    assert page.input_value("#kernel-matrix").split() == [
        "0",
        "1",
        "0",
        "1",
        "-4",
        "1",
        "0",
        "1",
        "0",
    ]
    assert decode(src(page, "#kernel-output")).std() > 0

    page.fill("#kernel-matrix", "1 0 -1\n1 0 -1\n1 0 -1")
    assert page.input_value("#kernel-name") == "custom"
    page.select_option("#padding", "same")
    page.select_option("#pool", "")
    # "same" padding keeps 28, stride 2 halves it: 14.
    page.wait_for_function(
        "() => document.querySelector('#kernel-explanation').textContent.includes('14x14 out')"
    )
    session.assert_clean()

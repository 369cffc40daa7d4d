"""The HTML report of a real (tiny) run: self-contained, complete, robust, and fine in a browser."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from markupsafe import Markup
from PIL import Image

from cnnlab.errors import CnnlabError
from cnnlab.export.saved import load, save_model
from cnnlab.inspect import confusion
from cnnlab.inspect.report import write_report
from cnnlab.inspect.report.html import accuracy_level, confusion_html, duration, html, table
from cnnlab.models import create_model

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
SECTIONS = ("settings", "data", "model", "training", "evaluation", "mistakes", "inside")


class Page(HTMLParser):
    """Collects what the tests look at: tags, images, section ids, notes and the title."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.images: list[str] = []
        self.ids: list[str] = []
        self.notes: list[str] = []
        self.title = ""
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.tags.append(tag)
        if tag == "img":
            self.images.append(values.get("src") or "")
        if values.get("id"):
            self.ids.append(values["id"])
        if values.get("class") == "note":
            self._in = "note"
            self.notes.append("")
        if tag == "title":
            self._in = "title"

    def handle_endtag(self, tag: str) -> None:
        if tag in ("div", "title"):
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "note":
            self.notes[-1] += data
        elif self._in == "title":
            self.title += data


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def copy_run(run: Path, tmp_path: Path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(run, target, ignore=shutil.ignore_patterns("checkpoints", "report.html"))
    return target


@pytest.fixture(scope="module")
def report(finished_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_report(finished_run, out=tmp_path_factory.mktemp("report") / "report.html")


def test_training_writes_the_report_into_the_run_folder(finished_run: Path) -> None:
    assert (finished_run / "report.html").is_file()
    assert "<h1>lenet5 on bacteria</h1>" in (finished_run / "report.html").read_text()


def test_report_is_one_self_contained_file(report: Path) -> None:
    text = report.read_text(encoding="utf-8")
    page = parse(report)
    assert text.startswith("<!DOCTYPE html>")
    assert "script" not in page.tags and "link" not in page.tags and "iframe" not in page.tags
    # Nothing is fetched: the only URL is the SVG namespace, which browsers never load.
    assert set(re.findall(r"https?://[^\s\"'<>)]+", text)) <= {"http://www.w3.org/2000/svg"}
    assert "url(http" not in text and "@import" not in text
    assert len(page.images) >= 8
    for source in page.images:
        assert source.startswith("data:image/png;base64,")
        png = base64.b64decode(source.split(",", 1)[1], validate=True)
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert text.count("<svg") >= 2  # the network graph and its legend, inline


def test_report_inlines_the_package_stylesheet(report: Path) -> None:
    from importlib import resources

    css = resources.files("cnnlab.inspect.report").joinpath("report.css").read_text("utf-8")
    text = report.read_text(encoding="utf-8")
    styles = re.findall(r"<style>(.*?)</style>", text, re.S)
    assert [style.strip() for style in styles] == [css.strip()]  # once, unescaped ("a>b")
    assert "details>summary" in styles[0]


def test_names_are_escaped_and_figures_are_rendered_in_memory(
    finished_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    def refuse(*args, **kwargs):
        raise AssertionError("the report made a temporary folder")

    run = copy_run(finished_run, tmp_path)
    config = json.loads((run / "config.json").read_text())
    config["model"] = "le<net>&5"
    (run / "config.json").write_text(json.dumps(config))
    monkeypatch.setattr(tempfile, "TemporaryDirectory", refuse)
    monkeypatch.setattr(tempfile, "mkdtemp", refuse)
    out = tmp_path / "out"
    out.mkdir()
    report = write_report(run, out=out / "r.html")
    text = report.read_text(encoding="utf-8")
    assert "<h1>le&lt;net&gt;&amp;5 on bacteria</h1>" in text
    assert "<title>le&lt;net&gt;&amp;5 on bacteria · cnnlab report</title>" in text
    assert "<net>" not in text
    page = parse(report)
    assert page.notes == [] and len(page.images) >= 8
    assert [p.name for p in out.iterdir()] == ["r.html"]  # nothing else was written


def test_report_has_every_section_and_the_run_numbers(report: Path, finished_run: Path) -> None:
    page = parse(report)
    text = report.read_text(encoding="utf-8")
    assert all(section in page.ids for section in SECTIONS)
    for section in SECTIONS:
        assert f'href="#{section}"' in text  # the table of contents
    metrics = json.loads((finished_run / "metrics.json").read_text())
    test = metrics["test"]
    low, high = test["accuracy_ci"]
    assert f"{100 * test['accuracy']:.1f}%" in text
    assert f"95% CI {100 * low:.1f}% – {100 * high:.1f}%" in text
    run = json.loads((finished_run / "run.json").read_text())
    assert duration(run["train_seconds"]) in text
    for name in metrics["test"]["class_names"]:
        assert f"<td>{name}</td>" in text
    assert "lenet5" in page.title
    # Every picture was drawn; a 16-bit run with convolutions leaves no notes.
    assert page.notes == []


def test_unfinished_run_is_refused(finished_run: Path, tmp_path: Path) -> None:
    run = copy_run(finished_run, tmp_path)
    (run / "metrics.json").unlink()
    with pytest.raises(CnnlabError, match=r"no finished run here \(metrics.json missing\)"):
        write_report(run)
    with pytest.raises(CnnlabError, match="no finished run here"):
        write_report(tmp_path / "nowhere")


def test_moved_data_leaves_notes_and_the_rest_of_the_report(
    finished_run: Path, tmp_path: Path
) -> None:
    run = copy_run(finished_run, tmp_path)
    config = json.loads((run / "config.json").read_text())
    config["data"] = [str(tmp_path / "moved-away")]
    (run / "config.json").write_text(json.dumps(config))
    page = parse(write_report(run))
    text = (run / "report.html").read_text()
    assert len(page.notes) >= 3  # samples, worst cases and the look inside need the images
    assert all("could not be drawn" in note for note in page.notes)
    assert "moved-away" in " ".join(page.notes)
    assert all(section in page.ids for section in SECTIONS)
    assert "<svg" in text and page.images  # curves, confusions and the graph need no images


def test_model_without_convolutions_notes_the_missing_filters(
    finished_run: Path, tmp_path: Path
) -> None:
    run = copy_run(finished_run, tmp_path)
    meta = json.loads((run / "model.json").read_text())
    mlp = create_model("mlp", in_chans=1, num_classes=4, input_size=(28, 28))
    save_model(mlp, run, meta["class_names"], bit_depth=meta["bit_depth"])
    page = parse(write_report(run, image_index=1))
    assert len(page.notes) == 1 and "filters could not be drawn" in page.notes[0]
    assert "image #1" in (run / "report.html").read_text()


def test_image_index_outside_the_test_set_is_refused(finished_run: Path, tmp_path: Path) -> None:
    with pytest.raises(CnnlabError, match=r"--image 10000: the test set has images 0 to \d+"):
        write_report(finished_run, out=tmp_path / "r.html", image_index=10_000)
    assert not (tmp_path / "r.html").exists()


def test_accuracy_badge_levels() -> None:
    assert accuracy_level({"accuracy": 0.95, "p_value_acc_gt_nir": 1e-9})[0] == "good"
    assert accuracy_level({"accuracy": 0.8, "p_value_acc_gt_nir": 1e-9})[0] == "fair"
    assert accuracy_level({"accuracy": 0.6, "p_value_acc_gt_nir": 0.001})[0] == "bad"
    assert accuracy_level({"accuracy": 0.95, "p_value_acc_gt_nir": 0.2})[0] == "bad"


# ------------------------------------------------------------------------------ browser
CHECK = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push('error: ' + e.message));
const original = console.error;
console.error = (...args) => {
  window.__errors.push('console: ' + args.join(' '));
  original(...args);
};
window.addEventListener('load', () => {
  const images = [...document.images];
  const broken = images.filter(i => !(i.complete && i.naturalWidth > 0)).length;
  const svgs = [...document.querySelectorAll('svg')].filter(s => s.getBBox().width > 0).length;
  const wide = document.documentElement.scrollWidth > window.innerWidth + 1;
  document.title = `CHECK images=${images.length} broken=${broken} svgs=${svgs} `
    + `overflow=${wide} errors=${window.__errors.length} ${window.__errors.join(' | ')}`;
});
</script>"""


def chromium(*arguments: str, profile: Path) -> subprocess.CompletedProcess:
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        *arguments,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs Debian's chromium for the browser check: apt-get install -y chromium",
)
def test_report_in_a_real_browser(report: Path, tmp_path: Path) -> None:
    checked = tmp_path / "checked.html"
    checked.write_text(
        report.read_text(encoding="utf-8").replace("<head>", "<head>" + CHECK, 1),
        encoding="utf-8",
    )
    result = chromium(
        "--virtual-time-budget=10000",
        "--window-size=1366,900",
        "--dump-dom",
        checked.as_uri(),
        profile=tmp_path / "profile-dom",
    )
    title = re.search(r"<title>(.*?)</title>", result.stdout, re.S)
    assert title, f"chromium printed no page: {result.stderr[-2000:]}"
    check = title.group(1)
    assert check.startswith("CHECK"), check
    images = int(re.search(r"images=(\d+)", check).group(1))
    assert images == len(parse(report).images) and images >= 8
    assert "broken=0" in check, check
    assert int(re.search(r"svgs=(\d+)", check).group(1)) >= 2, check
    assert "overflow=false" in check, check  # nothing wider than a 1366 px laptop screen
    assert "errors=0" in check, check

    screenshot = tmp_path / "report-screenshot.png"
    chromium(
        f"--screenshot={screenshot}",
        "--window-size=1366,900",
        report.as_uri(),
        profile=tmp_path / "profile-shot",
    )
    with Image.open(screenshot) as image:
        assert image.size == (1366, 900)
        colours = image.convert("RGB").resize((64, 48)).getcolors(64 * 48)
        assert len(colours) > 50  # a drawn page, not a blank one
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copyfile(screenshot, ARTIFACTS / "report-screenshot.png")


def test_confusion_table_holds_counts_shares_and_totals() -> None:
    text = confusion_html([[5, 1, 0], [0, 0, 0], [2, 0, 7]], ["a", "b", "c"])
    cells = re.findall(r"<td[^>]*>(.*?)</td>", text)
    # Row a: 5 of 6 (83.3 %) and 1 of 6 (16.7 %); the empty class b shows zeros, no shares.
    assert cells[:4] == ["<b>5</b><small>83.3%</small>", "<b>1</b><small>16.7%</small>", "0", "6"]
    assert cells[4:8] == ["0", "0", "0", "0"]
    assert cells[8:12] == ["<b>2</b><small>22.2%</small>", "0", "<b>7</b><small>77.8%</small>", "9"]
    assert cells[12:] == ["7", "1", "7", "15"]  # predicted per column, then all images
    assert text.count('class="diag"') == 2 and text.count('class="off"') == 2
    with pytest.raises(CnnlabError, match="3 class names"):
        confusion_html([[1, 0], [0, 1]], ["a", "b", "c"])


def test_confusion_table_has_the_colours_of_the_confusion_figure() -> None:
    counts = [[5, 1, 0], [0, 0, 0], [2, 0, 7]]
    text = confusion_html(counts, ["a", "b", "c"])
    styles = re.findall(
        r'<td class="(?:diag|off|zero)" style="background:rgb\((\d+),(\d+),(\d+)\)', text
    )
    image, _ = confusion.cell_colours(confusion.confusion_counts(counts, ["a", "b", "c"]))
    assert [tuple(map(int, s)) for s in styles] == [tuple(c) for c in image.reshape(-1, 3)]


def test_html_helpers_escape_text_and_keep_trusted_fragments() -> None:
    name = 'a<b & "c"'
    assert html("<b>{}</b>", name) == "<b>a&lt;b &amp; &#34;c&#34;</b>"
    assert html("<b>{}</b>", Markup("<i>x</i>")) == "<b><i>x</i></b>"
    built = table(["<h>"], [[name], [Markup("<code>x</code>")]])
    assert "<th>&lt;h&gt;</th>" in built and "<td>a&lt;b &amp; &#34;c&#34;</td>" in built
    assert "<td><code>x</code></td>" in built
    text = confusion_html([[1, 0], [0, 1]], ["<script>", "b&c"])
    assert "<script>" not in text and "&lt;script&gt;" in text and "b&amp;c" in text


def test_report_from_the_model_and_split_in_memory(finished_run: Path, tmp_path: Path) -> None:
    from cnnlab.runs.reading import load_run_split

    model = create_model("lenet5", in_chans=1, num_classes=4, input_size=(28, 28))
    model.load_state_dict(load(finished_run).state_dict())
    model.train()
    split = load_run_split(finished_run)
    page = write_report(finished_run, out=tmp_path / "r.html", model=model, split=split)
    again = write_report(finished_run, out=tmp_path / "again.html")

    def mistakes(path: Path) -> str:
        text = path.read_text(encoding="utf-8")
        return text[text.index('id="mistakes"') : text.index('id="inside"')]

    assert mistakes(page) == mistakes(again)  # the same images, scores and file names
    assert parse(page).notes == []
    assert model.training and not hasattr(model, "class_names")  # the caller's model untouched
    test_names = {Path(p).name for p in split.test.paths}
    shown = re.findall(r'<code class="file" title="([^"]*)"', mistakes(page))
    assert shown and {Path(p).name for p in shown} <= test_names


def test_the_report_says_which_weights_were_kept_and_where_validation_ran(
    finished_run: Path, tmp_path: Path
) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(finished_run, copy)
    config = json.loads((copy / "config.json").read_text())
    run = json.loads((copy / "run.json").read_text())
    plain = write_report(copy, out=tmp_path / "plain.html").read_text()
    assert "--valid-on test" not in plain and "--keep last" not in plain
    config["valid_on"], run["kept_epoch"] = "test", run["epochs_run"] + 1
    (copy / "config.json").write_text(json.dumps(config))
    (copy / "run.json").write_text(json.dumps(run))
    marked = write_report(copy, out=tmp_path / "marked.html").read_text()
    assert "the test set, every epoch (--valid-on test)" in marked
    assert f"the last epoch, {run['kept_epoch']} (--keep last)" in marked

"""The microscopy workflow end to end through the ``cnnlab`` command, as a user types it.

``synth field`` makes a field with its answers (``objects.csv``), ``crops`` cuts it by ROIs and
by labels, ``train`` learns on the ROI crops, ``predict --field`` classifies every object of the
field, and ``data summary`` describes the field. Each step is checked against references that
do not come from the step itself: the truth table, the field's own pixels read with tifffile,
labels counted with NumPy and boxed with SciPy, the overlay read with Pillow, and the model's
answers for the crop files on disk. Everything runs in-process through :func:`cnnlab.cli.main`
on one small non-square field (384 x 512, so that swapped axes show) made once for the module.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import shutil
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image
from scipy import ndimage

from cnnlab.cli import main

HEIGHT, WIDTH, PER_CLASS = 384, 512, 8
CLASSES = ("1cell", "2cell", "groups", "rien")
# Tiny and fast: the model only has to exist and answer, not to be good.
TRAIN = ["train", "--size", "24", "--epochs", "2", "--no-report", "--no-cache", "--quiet"]


def cli(*argv: object) -> tuple[int, str, str]:
    """``cnnlab ARGV`` in-process: exit code, stdout, stderr.

    ``main`` installs its one-line warning printer; ``catch_warnings`` puts the old one back
    afterwards, and "always" shows a repeated warning again in a second run of the same test.
    """
    threads = torch.get_num_threads()
    out, err = io.StringIO(), io.StringIO()
    with (
        warnings.catch_warnings(),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        warnings.simplefilter("always")
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exit:  # argparse refuses some input itself
            code = exit.code
    torch.set_num_threads(threads)
    return code, out.getvalue(), err.getvalue()


def ok(*argv: object) -> tuple[str, str]:
    code, out, err = cli(*argv)
    assert code == 0, f"cnnlab {' '.join(map(str, argv))}: exit {code}\n{err}"
    return out, err


def read_csv(path: Path | str) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def state(folder: Path) -> dict[str, tuple]:
    """Each file below ``folder`` by its bytes and modification time."""
    return {
        p.relative_to(folder).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> dict[str, Path]:
    """A field, its ROI crops, and a tiny model trained on them (made once: ~5 s)."""
    root = tmp_path_factory.mktemp("microscopy_cli")
    field, crops, run = root / "field", root / "crops", root / "run"
    out, _ = ok(
        "synth", "field", "--out", field, "--size", f"{HEIGHT}x{WIDTH}", "--per-class", PER_CLASS
    )
    ok("crops", field / "field.tif", "--rois", field / "RoiSet.zip", "--out", crops)
    ok(*TRAIN, "--data", crops, "--out", run)
    return {"root": root, "field": field, "crops": crops, "run": run, "synth_out": out}


@pytest.fixture(scope="module")
def objects(lab) -> list[dict[str, str]]:
    return read_csv(lab["field"] / "objects.csv")


# ----------------------------------------------------------------------------- synth field
def test_synth_field_writes_a_16bit_field_whose_labels_match_the_truth_table(lab, objects):
    field = tifffile.imread(lab["field"] / "field.tif")
    labels = tifffile.imread(lab["field"] / "field_labels.tif")
    assert field.shape == labels.shape == (HEIGHT, WIDTH)
    assert field.dtype == np.uint16
    assert Counter(row["class"] for row in objects) == dict.fromkeys(CLASSES, PER_CLASS)
    # Object k is label k, and objects.csv's area is the pixel count of its mask.
    areas = np.bincount(labels.ravel(), minlength=len(objects) + 1)
    assert [int(row["id"]) for row in objects] == list(range(1, len(objects) + 1))
    assert [int(row["area"]) for row in objects] == areas[1:].tolist()
    assert f"{len(objects)} objects" in lab["synth_out"]
    assert f"{HEIGHT}x{WIDTH}" in lab["synth_out"]


# ----------------------------------------------------------------------------- crops
def test_crops_by_rois_give_each_class_its_objects_and_the_fields_own_pixels(lab, objects):
    crops = lab["crops"]
    table = read_csv(crops / "crops.csv")
    by_folder = Counter(p.parent.name for p in crops.rglob("*.tif"))
    assert by_folder == Counter(row["class"] for row in objects)  # the hand count
    assert [(r["id"], r["name"], r["class"]) for r in table] == [
        (o["id"], o["name"], o["class"]) for o in objects
    ]
    field = tifffile.imread(lab["field"] / "field.tif")
    for row, obj in zip(table, objects, strict=True):
        assert row["file"] == f"{obj['class']}/roi {obj['name']} - field.tif"
        box = [int(row[k]) for k in ("crop_top", "crop_left", "crop_bottom", "crop_right")]
        # A ROI's crop is the ROI itself by default, as ImageJ's Duplicate cuts it.
        assert box == [int(obj[k]) for k in ("top", "left", "bottom", "right")]
        crop = tifffile.imread(crops / row["file"])
        top, left, bottom, right = box
        assert crop.dtype == np.uint16
        np.testing.assert_array_equal(crop, field[top:bottom, left:right])


def test_crops_by_labels_give_one_crop_per_label_clear_of_the_border(lab, tmp_path):
    labels = tifffile.imread(lab["field"] / "field_labels.tif")
    # The synthetic field keeps its objects off the edge: add one on it and one just inside,
    # whose crop would leave the field, in the background band along the top.
    assert not labels[:3, :60].any()
    labels = labels.copy()
    labels[0:3, 10:16] = 900  # touches the edge
    labels[1:3, 40:46] = 901  # does not, but its 3-pixel margin does
    tifffile.imwrite(tmp_path / "labels.tif", labels)
    margin = 3
    # SciPy's boxes of every label, grown by the margin; kept when they stay inside the field.
    boxes = {
        index: (s[0].start - margin, s[1].start - margin, s[0].stop + margin, s[1].stop + margin)
        for index, s in enumerate(ndimage.find_objects(labels), start=1)
        if s is not None
    }
    expected = sorted(
        (index, box)
        for index, box in boxes.items()
        if box[0] >= 0 and box[1] >= 0 and box[2] <= HEIGHT and box[3] <= WIDTH
    )
    assert len(expected) == len(np.unique(labels)) - 3  # background and the two added

    out, _ = ok(
        "crops", lab["field"] / "field.tif", "--labels", tmp_path / "labels.tif",
        "--margin", margin, "--out", tmp_path / "crops",
    )  # fmt: skip
    table = read_csv(tmp_path / "crops" / "crops.csv")
    got = [
        (
            int(r["id"]),
            tuple(int(r[k]) for k in ("crop_top", "crop_left", "crop_bottom", "crop_right")),
        )
        for r in table
    ]
    assert sorted(got) == expected
    # Labels carry no class: the crops lie in the folder itself, one file per row.
    files = sorted(p.name for p in (tmp_path / "crops").iterdir() if p.suffix == ".tif")
    assert files == sorted(r["file"] for r in table)
    assert out.startswith(f"{len(expected)} crops")
    assert "skipped 2 objects" in out


# ----------------------------------------------------------------------------- data summary
def test_data_summary_describes_the_field_file(lab):
    out, _ = ok("data", "summary", lab["field"] / "field.tif")
    rows = dict(line.split(None, 1) for line in out.splitlines())
    rows = {key: rows.get(key) for key in ("height", "width", "pixels")}
    assert rows == {"height": str(HEIGHT), "width": str(WIDTH), "pixels": "uint16 (16-bit)"}


# ----------------------------------------------------------------------------- predict --field
def _counts(text: str) -> dict[str, int]:
    """The per-class lines between '... classified' and the next heading."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.endswith("classified"))
    counts = {}
    for line in lines[start + 1 :]:
        if not line.startswith("  "):
            break
        name, value = line.split()
        counts[name] = int(value)
    return counts


def test_predict_field_gives_one_row_per_object_and_an_overlay(lab, objects, tmp_path):
    pred = tmp_path / "pred.csv"
    out, err = ok(
        "predict", lab["run"], "--field", lab["field"] / "field.tif",
        "--rois", lab["field"] / "RoiSet.zip", "--out", pred,
    )  # fmt: skip
    rows = read_csv(pred)
    assert [(r["id"], r["name"], r["roi_class"]) for r in rows] == [
        (o["id"], o["name"], o["class"]) for o in objects
    ]
    columns = [f"p_{name}" for name in CLASSES]
    probabilities = np.array([[float(r[c]) for c in columns] for r in rows])
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert [r["predicted"] for r in rows] == [CLASSES[i] for i in probabilities.argmax(axis=1)]
    counts = _counts(out)
    assert sum(counts.values()) == len(rows)
    assert counts == {name: [r["predicted"] for r in rows].count(name) for name in CLASSES}
    assert err == ""
    overlay = Image.open(tmp_path / "pred-overlay.png")
    assert overlay.format == "PNG"
    assert overlay.width == WIDTH and overlay.height >= HEIGHT  # a legend may follow

    # The field's crops are the crop files' pixels, so the model answers the same for both.
    files = read_csv(lab["crops"] / "crops.csv")
    by_file, _ = ok("predict", lab["run"], lab["crops"])
    name_of = {str(lab["crops"] / f["file"]): f["name"] for f in files}
    from_files = {
        name_of[r["path"]]: [r[c] for c in columns] for r in csv.DictReader(io.StringIO(by_file))
    }
    assert {r["name"]: [r[c] for c in columns] for r in rows} == from_files


def test_a_whole_field_given_as_a_file_is_shrunk_with_a_warning(lab):
    """The model records the largest crop it learned on (hand count: the crop files' own
    sizes); a file far larger than that, the field itself, is classified whole, and says so."""
    sizes = [tifffile.imread(path).shape for path in sorted(lab["crops"].rglob("*.tif"))]
    largest = [max(h for h, _ in sizes), max(w for _, w in sizes)]
    meta = json.loads((lab["run"] / "model.json").read_text())
    assert meta["largest_source"] == largest
    assert 4 * largest[0] < HEIGHT and 4 * largest[1] < WIDTH  # the field is far larger
    field = lab["field"] / "field.tif"
    out, err = ok("predict", lab["run"], field)
    assert len(list(csv.DictReader(io.StringIO(out)))) == 1  # one answer for the whole field
    assert err.count("\n") == 1 and err.startswith("cnnlab: warning: ")
    assert f"{field} ({HEIGHT}x{WIDTH} pixels) is more than 4x" in err
    assert f"(up to {largest[0]}x{largest[1]})" in err and "--field" in err
    # Crops of the sizes it learned on: no warning.
    _, err = ok("predict", lab["run"], lab["crops"])
    assert err == ""


def test_predict_field_without_out_writes_the_table_to_stdout_and_counts_to_stderr(
    lab, objects, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    out, err = ok(
        "predict", lab["run"], "--field", lab["field"] / "field.tif",
        "--rois", lab["field"] / "RoiSet.zip",
    )  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["name"] for r in rows] == [o["name"] for o in objects]
    assert sum(_counts(err).values()) == len(rows)
    assert list(tmp_path.iterdir()) == []  # no overlay unless asked for or beside --out


def test_predict_field_replaces_its_csv_and_overlay_only_with_overwrite(lab, tmp_path):
    pred, overlay = tmp_path / "pred.csv", tmp_path / "pred-overlay.png"
    base = ["predict", lab["run"], "--field", lab["field"] / "field.tif"]
    base += ["--rois", lab["field"] / "RoiSet.zip", "--out", pred]
    ok(*base)
    before = state(tmp_path)

    code, out, err = cli(*base)
    assert (code, out) == (2, "")
    assert err.startswith("cnnlab: error: --out ") and len(err.splitlines()) == 1
    assert state(tmp_path) == before

    pred.unlink()  # only the overlay is in the way now: the CSV must not appear either
    before = state(tmp_path)
    code, out, err = cli(*base)
    assert (code, out) == (2, "")
    # The overlay beside the CSV was not asked for by a flag: the error names --out, the overlay
    # file and both ways out.
    assert err.startswith("cnnlab: error: --out ") and len(err.splitlines()) == 1
    assert "overlay" in err and "--overwrite" in err and "--overlay" in err
    assert state(tmp_path) == before

    pred.write_text("old\n")
    overlay.write_bytes(b"old")
    ok(*base, "--overwrite")
    assert len(read_csv(pred)) == len(read_csv(lab["field"] / "objects.csv"))
    assert Image.open(overlay).width == WIDTH


# ----------------------------------------------------------------------------- bad files
def _eight_bit_png(source: Path, target: Path) -> None:
    pixels = tifffile.imread(source)
    Image.fromarray((pixels >> 8).astype(np.uint8)).save(target)


def test_predict_skip_bad_keeps_the_good_files_and_names_the_skipped_ones(lab, tmp_path):
    folder = tmp_path / "mix"
    folder.mkdir()
    good = sorted((lab["crops"] / "1cell").iterdir())[:3]
    for file in good:
        shutil.copy2(file, folder / file.name)
    (folder / "damaged.tif").write_bytes(good[0].read_bytes()[:100])
    _eight_bit_png(good[0], folder / "eight.png")

    out, err = ok("predict", lab["run"], folder, "--skip-bad")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert sorted(Path(r["path"]).name for r in rows) == sorted(f.name for f in good)
    assert "damaged.tif" in err and "eight.png" in err
    assert "skipped 2 of 5 files" in err

    out, err = ok("predict", lab["run"], folder, "--skip-bad", "--out", tmp_path / "p.csv")
    assert out.startswith("wrote 3 predictions") and "(2 files skipped)" in out
    assert len(read_csv(tmp_path / "p.csv")) == 3


def test_mixed_bit_depths_are_described_refused_for_training_and_converted_on_request(
    lab, tmp_path
):
    data = tmp_path / "data"
    shutil.copytree(lab["crops"], data)
    (data / "crops.csv").unlink()
    tif = sorted((data / "2cell").iterdir())[0]
    png = tif.with_suffix(".png")
    _eight_bit_png(tif, png)
    tif.unlink()
    total = sum(1 for _ in data.rglob("*.*"))

    out, _ = ok("data", "summary", data)
    assert f"mixed bit depths: 1 8-bit, {total - 1} 16-bit" in out

    code, out, err = cli(*TRAIN, "--data", data, "--out", tmp_path / "run")
    assert (code, out, len(err.splitlines())) == (2, "", 1)
    assert png.name in err and ".tif is 16-bit" in err and "--convert-bit-depth" in err
    assert not (tmp_path / "run").exists()

    ok(*TRAIN, "--data", data, "--out", tmp_path / "run", "--convert-bit-depth")
    assert json.loads((tmp_path / "run" / "model.json").read_text())["bit_depth"] == 16
    split = read_csv(tmp_path / "run" / "split.csv")
    assert len(split) == total and any(Path(r["path"]).name == png.name for r in split)

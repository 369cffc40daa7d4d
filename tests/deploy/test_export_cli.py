"""``cnnlab export`` of a finished run, and ``cnnlab predict FILE.onnx`` against the run itself."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import tifffile
import torch
from PIL import Image

from cnnlab.cli.main import main
from cnnlab.synth import synth_bacteria


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, train_quietly) -> tuple[Path, Path]:
    """A 16-bit LeNet-5 run (one epoch on synthetic bacteria crops) and its crops folder."""
    root = tmp_path_factory.mktemp("export")
    data = root / "bacteria"
    synth_bacteria(data, per_class=8, seed=1, min_size=16, max_size=30)
    run = train_quietly(
        data, root / "run", size="28", model="lenet5", epochs=1, batch_size=8, report=True
    )
    return run, data


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    lines = [line for line in err.splitlines() if line.startswith("cnnlab: error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_export_onnx_beside_the_run_then_predict_as_the_run_does(finished_run, capsys, tmp_path):
    run, data = finished_run
    before = sorted((p.relative_to(run), p.stat().st_mtime_ns) for p in run.rglob("*"))
    code, out, err = cli(capsys, "export", str(run), "--format", "onnx")
    onnx_path = run.parent / "run.onnx"
    assert code == 0 and out.strip() == f"wrote {onnx_path}", err
    # The run folder is left exactly as it was: the export is its sibling.
    assert sorted((p.relative_to(run), p.stat().st_mtime_ns) for p in run.rglob("*")) == before
    meta = {p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props}
    weights = hashlib.sha256((run / "model.safetensors").read_bytes()).hexdigest()
    assert meta["cnnlab.weights_sha256"] == weights
    assert meta["cnnlab.source_run"] == str(run.resolve())
    assert meta["cnnlab.bit_depth"] == "16" and meta["cnnlab.input_size"] == "[28, 28]"

    crops = data / "2cell"
    from_run, from_onnx = tmp_path / "run.csv", tmp_path / "onnx.csv"
    assert cli(capsys, "predict", str(run), str(crops), "--out", str(from_run))[0] == 0
    code, out, _ = cli(capsys, "predict", str(onnx_path), str(crops), "--out", str(from_onnx))
    assert code == 0 and "wrote 8 predictions" in out
    rows_run, rows_onnx = read_csv(from_run), read_csv(from_onnx)
    assert [r["path"] for r in rows_onnx] == [r["path"] for r in rows_run]
    assert [r["predicted"] for r in rows_onnx] == [r["predicted"] for r in rows_run]
    columns = [c for c in rows_run[0] if c.startswith("p_")]
    assert list(rows_onnx[0]) == list(rows_run[0]) and len(columns) == 4
    as_numbers = [[[float(r[c]) for c in columns] for r in rows] for rows in (rows_run, rows_onnx)]
    # The CSV rounds to 6 decimals: agreement within 1e-4 plus that rounding.
    assert np.abs(np.subtract(*as_numbers)).max() <= 1e-4 + 1e-6

    # The ONNX file's own metadata drives the checks: an 8-bit image is refused by name.
    eight = tmp_path / "eight.png"
    Image.fromarray(np.full((28, 28), 200, np.uint8)).save(eight)
    code, _, err = cli(capsys, "predict", str(onnx_path), str(eight))
    assert_one_line_error(code, err, "eight.png", "8-bit", "16-bit")

    # The largest training crop travels too (hand count: the crop files' own sizes), and a
    # far larger image gets the run's own warning.
    sizes = [tifffile.imread(path).shape for path in data.rglob("*.tif")]
    largest = [max(h for h, _ in sizes), max(w for _, w in sizes)]
    assert json.loads(meta["cnnlab.largest_source"]) == largest
    field = tmp_path / "field.tif"
    tifffile.imwrite(field, np.full((5 * largest[0], 5 * largest[1]), 900, np.uint16))
    with warnings.catch_warnings():
        warnings.simplefilter("always")  # the same warning twice in one process
        said = [cli(capsys, "predict", str(model), str(field))[2] for model in (run, onnx_path)]
    assert said[0] == said[1] and said[0].startswith(
        f"cnnlab: warning: {field} ({5 * largest[0]}x{5 * largest[1]} pixels) is"
    )

    code, _, err = cli(capsys, "export", str(run), "--format", "onnx")
    assert_one_line_error(code, err, "run.onnx: exists", "--overwrite")


@pytest.mark.filterwarnings(r"ignore:`torch\.jit\.load` is deprecated:DeprecationWarning")
def test_export_torchscript_with_out_and_overwrite(finished_run, capsys, tmp_path):
    run, _ = finished_run
    out = tmp_path / "model.pt"
    out.write_bytes(b"an older file")
    code, _, err = cli(capsys, "export", str(run), "--format", "torchscript", "--out", str(out))
    assert_one_line_error(code, err, "model.pt: exists", "--overwrite")
    assert out.read_bytes() == b"an older file"
    args = ("export", str(run), "--format", "torchscript", "--out", str(out), "--overwrite")
    code, printed, err = cli(capsys, *args)
    assert code == 0 and printed.strip() == f"wrote {out}", err
    archive = torch.jit.load(str(out))
    with torch.no_grad():
        probabilities = archive(torch.full((3, 1, 28, 28), 3000.0))
    assert probabilities.shape == (3, 4)
    assert torch.allclose(probabilities.sum(1), torch.ones(3))


def test_export_refuses_in_one_line(finished_run, capsys, tmp_path, monkeypatch):
    run, _ = finished_run
    code, _, err = cli(capsys, "export", str(run), "--format", "keras")
    assert_one_line_error(code, err, "--format keras", "onnx, torchscript")
    code, _, err = cli(capsys, "export", str(tmp_path / "nowhere"), "--format", "onnx")
    assert_one_line_error(code, err, "nowhere: no such run folder")
    # A run that never finished: its files are there, but not run.json.
    unfinished = tmp_path / "unfinished"
    shutil.copytree(run, unfinished)
    (unfinished / "run.json").unlink()
    code, _, err = cli(capsys, "export", str(unfinished), "--format", "onnx")
    assert_one_line_error(code, err, "not finished", "--resume")
    partial = tmp_path / ".interrupted.partial"
    shutil.copytree(unfinished, partial)
    code, _, err = cli(capsys, "export", str(tmp_path / "interrupted"), "--format", "onnx")
    assert_one_line_error(code, err, "not finished", "--resume")
    code, _, err = cli(capsys, "export", str(run), "--format", "onnx", "--out", "x.zip")
    assert_one_line_error(code, err, "--out x.zip", "*.onnx")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    code, _, err = cli(
        capsys, "export", str(run), "--format", "onnx", "--out", str(tmp_path / "m.onnx")
    )
    assert_one_line_error(code, err, "onnxruntime", "pip install 'cnnlab[onnx]'")
    assert not list(tmp_path.glob("*.onnx"))

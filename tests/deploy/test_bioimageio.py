"""bioimage.io packages, checked by bioimage.io's own tools with the network shut off.

Two tiny finished runs, trained once per module: synthetic phase-contrast bacteria (16-bit,
one channel) and a handful of MNIST digits as 8-bit images given to a three-channel model. Each
is packaged, and ``bioimageio.core``'s test of the package must pass for every weight format
while every socket connection is refused. The package's test output must be what cnnlab itself
predicts, from the test input and from the sample image read back as a file.
"""

from __future__ import annotations

import io
import json
import socket
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("bioimageio.core")
pytest.importorskip("onnxruntime")

from cnnlab.data.mnist import mnist
from cnnlab.deploy import export_model
from cnnlab.deploy.bioimageio import DEFAULT_LICENSE, check_bioimageio
from cnnlab.errors import CnnlabError
from cnnlab.evaluate import predict_proba
from cnnlab.export import load, predict
from cnnlab.synth import synth_bacteria

WEIGHT_FORMATS = ("torchscript", "onnx")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, train_quietly) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bioimageio-runs")
    synth_bacteria(root / "bacteria", per_class=8, seed=0, min_size=16, max_size=30)
    # 8-bit digits of three classes as PNG files, for a model that takes RGB.
    train, _ = mnist()
    for digit in (0, 1, 7):
        folder = root / "digits" / f"d{digit}"
        folder.mkdir(parents=True)
        index = (train.labels == digit).nonzero()[:10, 0]
        for i, image in zip(index.tolist(), train.images[index], strict=True):
            Image.fromarray(image[0].numpy().astype(np.uint8)).save(folder / f"{i}.png")
    # One epoch of LeNet-5 in batches of 8 on 28x28 images: enough for a package to describe.
    small = {"size": "28", "model": "lenet5", "epochs": 1, "batch_size": 8}
    return {
        "bacteria16": train_quietly(root / "bacteria", root / "bacteria-run", **small),
        "digits8rgb": train_quietly(root / "digits", root / "digits-run", channels=3, **small),
    }


@pytest.fixture(scope="module")
def packages(runs, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each run exported once, with two authors and a DOI citation."""
    root = tmp_path_factory.mktemp("bioimageio-packages")
    return {
        kind: export_model(
            run,
            "bioimageio",
            out=root / f"{kind}.zip",
            authors=["Ada Lovelace", "Alan Turing"],
            cite=["Test citation|10.5281/zenodo.1234567"],
        )
        for kind, run in runs.items()
    }


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list:
    """Refuses every network connection and name lookup, and records each attempt."""
    attempts: list = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access in a test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    from bioimageio.spec import settings

    monkeypatch.setattr(settings, "cache_path", tmp_path / "bioimageio-cache")
    return attempts


def _member(package: Path, name: str) -> bytes:
    with zipfile.ZipFile(package) as archive:
        return archive.read(name)


@pytest.mark.parametrize("kind", ["bacteria16", "digits8rgb"])
def test_package_passes_bioimageio_core_offline(runs, packages, kind, tmp_path, offline):
    run, package = runs[kind], packages[kind]
    summary = check_bioimageio(package)
    failed = [d.name for d in summary.details if d.status != "passed"]
    assert summary.status == "passed", failed
    for weights in WEIGHT_FORMATS:
        runs_of_format = [d for d in summary.details if f"({weights})" in d.name]
        assert runs_of_format, f"no test of the {weights} weights"
        assert all(d.status == "passed" for d in runs_of_format)
    assert offline == []

    # The test output is cnnlab's own prediction for the test input...
    model = load(run)
    test_input = np.load(io.BytesIO(_member(package, "test_input.npy")))
    test_output = np.load(io.BytesIO(_member(package, "test_output.npy")))
    assert test_input.dtype == np.float32
    assert test_input.shape == (1, model.in_chans, 28, 28)
    assert np.array_equal(test_input, np.rint(test_input))  # raw counts, not standardized
    assert test_input.max() <= (65535 if kind == "bacteria16" else 255)
    expected = predict_proba(model, torch.from_numpy(test_input)).numpy()
    np.testing.assert_allclose(test_output, expected, rtol=0, atol=1e-7)
    # ... and for the sample image as a file, read by cnnlab's reader at its own bit depth.
    sample = tmp_path / "sample.tif"
    sample.write_bytes(_member(package, "sample_input.tif"))
    table = predict(model, [sample])
    np.testing.assert_allclose(table.probabilities.numpy(), test_output, rtol=0, atol=1e-6)


def test_rdf_names_classes_and_readme_states_metrics(runs, packages):
    from bioimageio.spec import load_model_description

    run, package = runs["bacteria16"], packages["bacteria16"]
    descr = load_model_description(package, perform_io_checks=False)
    model = load(run)
    (channel,) = [a for a in descr.outputs[0].axes if a.type == "channel"]
    assert list(channel.channel_names) == list(model.class_names)
    assert [a.name for a in descr.authors] == ["Ada Lovelace", "Alan Turing"]
    assert str(descr.license) == DEFAULT_LICENSE
    assert descr.config.model_extra["cnnlab"]["bit_depth"] == 16
    assert [p.id for p in descr.inputs[0].preprocessing] == ["ensure_dtype"]

    metrics = json.loads((run / "metrics.json").read_text())
    readme = _member(package, "README.md").decode()
    accuracy = 100 * metrics["test"]["accuracy"]
    low, high = (100 * v for v in metrics["test"]["accuracy_ci"])
    assert f"accuracy {accuracy:.2f}% (95% Clopper-Pearson interval {low:.2f}% to {high:.2f}%)" in (
        readme
    )
    assert "## Validation" in readme
    assert f"- License: {DEFAULT_LICENSE} (cnnlab's default" in readme
    cover = Image.open(io.BytesIO(_member(package, "cover.png")))
    assert cover.width == 2 * cover.height


def test_refusals(runs, tmp_path):
    run = runs["bacteria16"]
    out = tmp_path / "m.zip"
    with pytest.raises(CnnlabError, match="--author"):
        export_model(run, "bioimageio", out=out)
    with pytest.raises(CnnlabError, match="--cite"):
        export_model(run, "bioimageio", out=out, authors=["A B"], cite=["no reference"])
    with pytest.raises(CnnlabError, match="license"):
        export_model(run, "bioimageio", out=out, authors=["A B"], license="Not-A-License")
    assert not out.exists()
    out.write_bytes(b"old")
    with pytest.raises(CnnlabError, match="--overwrite"):
        export_model(run, "bioimageio", out=out, authors=["A B"])
    assert out.read_bytes() == b"old"
    with pytest.raises(CnnlabError, match="run folder"):
        export_model(load(run), "bioimageio", out=tmp_path / "x.zip", authors=["A B"])


def test_cli_flags_reach_the_package(runs, tmp_path, capsys):
    from bioimageio.spec import load_model_description

    from cnnlab.cli.main import main

    out = tmp_path / "cli.zip"
    export = ["export", str(runs["digits8rgb"])]
    onnx = [*export, "--format", "onnx", "--out", str(tmp_path / "m.onnx"), "--author", "A B"]
    assert main(onnx) == 2
    assert "--author: describes a bioimage.io package" in capsys.readouterr().err
    assert main([*export, "--format", "bioimageio", "--out", str(out)]) == 2
    assert "--author" in capsys.readouterr().err
    flags = ["--author", "Grace Hopper", "--license", "MIT", "--tag", "digits"]
    flags += ["--name", "tiny digits (RGB)"]
    flags += ["--cite", "A paper|https://doi.org/10.5281/zenodo.7654321"]
    code = main([*export, "--format", "bioimageio", "--out", str(out), *flags])
    assert code == 0, capsys.readouterr().err
    descr = load_model_description(out, perform_io_checks=False)
    assert [a.name for a in descr.authors] == ["Grace Hopper"]
    assert str(descr.license) == "MIT" and "digits" in descr.tags
    assert descr.name == "tiny digits (RGB)"
    assert [str(c.doi) for c in descr.cite] == ["10.5281/zenodo.7654321"]

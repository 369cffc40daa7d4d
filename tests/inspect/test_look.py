from __future__ import annotations

import warnings

import pytest
from PIL import Image

from cnnlab.cli import main
from cnnlab.errors import CnnlabError
from cnnlab.export import load
from cnnlab.inspect.look import inspect_image
from cnnlab.models import create_model


def a_crop(finished_run):
    return sorted((finished_run.parent / "bacteria" / "1cell").glob("*.tif"))[0]


def test_inspect_image_draws_every_picture(finished_run, tmp_path):
    crop = a_crop(finished_run)
    written = inspect_image(load(finished_run), crop, tmp_path / "look")
    names = sorted(p.name for p in written)
    assert names == sorted(
        [
            f"{crop.stem} - activations.png",
            f"{crop.stem} - saliency.png",
            "model - filters.png",
            "model - kernels.png",
        ]
    )
    for path in written:
        with Image.open(path) as image:
            assert image.width > 200 and image.height > 100


def test_an_mlp_still_gets_its_activations(tmp_path):
    model = create_model("mlp", in_chans=1, num_classes=3, input_size=(16, 16))
    model.class_names, model.bit_depth = ("a", "b", "c"), 8
    Image.new("L", (16, 16), 128).save(tmp_path / "grey.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        written = inspect_image(model, tmp_path / "grey.png", tmp_path / "out")
    assert [p.name for p in written] == ["grey - activations.png", "grey - saliency.png"]
    assert any("no convolution" in str(w.message) for w in caught)


def test_cli_report_inspect_and_kernels(finished_run, tmp_path, capsys):
    crop = a_crop(finished_run)
    assert main(["report", str(finished_run), "--out", str(tmp_path / "r.html")]) == 0
    assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")
    assert main(["inspect", str(finished_run), str(crop), "--out", str(tmp_path / "in")]) == 0
    assert len(list((tmp_path / "in").glob("*.png"))) == 4
    out = tmp_path / "k.png"
    args = [
        "kernels",
        str(crop),
        "--kernel",
        "edge2",
        "--matrix",
        "0 -1 0; -1 5 -1; 0 -1 0",
        "--padding",
        "same",
        "--stride",
        "2",
        "--pool",
        "max:2",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    assert Image.open(out).width > 200
    capsys.readouterr()
    assert main(["kernels", str(crop), "--pool", "median:2"]) == 2
    assert "--pool" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 2
    assert "no finished run" in capsys.readouterr().err


def test_inspect_refuses_an_image_the_model_cannot_take(finished_run, tmp_path):
    Image.new("L", (30, 30), 9).save(tmp_path / "eight-bit.png")
    with pytest.raises(CnnlabError, match="8-bit image, but the model learned on 16-bit"):
        inspect_image(load(finished_run), tmp_path / "eight-bit.png", tmp_path / "x")


def test_cli_plots_writes_every_picture_of_a_run(finished_run, tmp_path, capsys):
    out = tmp_path / "pictures"
    assert main(["plots", str(finished_run), "--out", str(out)]) == 0
    names = sorted(p.name for p in out.glob("*.png"))
    assert names == sorted(
        [
            "learning_curves.png",
            "epoch_times.png",
            "class_counts.png",
            "confusion_train.png",
            "confusion_valid.png",
            "confusion_test.png",
            "samples.png",
            "worst_cases.png",
            "confused_pairs.png",
        ]
    )
    for path in out.glob("*.png"):
        with Image.open(path) as image:
            assert image.width > 100


def test_pictures_of_the_same_names_are_replaced_only_when_asked(finished_run, tmp_path, capsys):
    crop = a_crop(finished_run)
    look, pictures = tmp_path / "look", tmp_path / "pictures"
    for folder, name in ((look, f"{crop.stem} - saliency.png"), (pictures, "samples.png")):
        folder.mkdir()
        (folder / name).write_bytes(b"a user's own file")
        (folder / "notes.txt").write_text("mine")
    inspect_args = ["inspect", str(finished_run), str(crop), "--out", str(look)]
    plots_args = ["plots", str(finished_run), "--out", str(pictures)]
    for args, name in ((inspect_args, "saliency.png"), (plots_args, "samples.png")):
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("cnnlab: error: --out") and name in err and "--overwrite" in err
    # Nothing drawn, nothing replaced.
    assert {p.name for p in look.iterdir()} == {f"{crop.stem} - saliency.png", "notes.txt"}
    assert (pictures / "samples.png").read_bytes() == b"a user's own file"
    assert main([*inspect_args, "--overwrite"]) == 0 and main([*plots_args, "--overwrite"]) == 0
    assert (pictures / "samples.png").read_bytes().startswith(b"\x89PNG")
    assert len(list(look.glob("*.png"))) == 4 and (look / "notes.txt").read_text() == "mine"
    # The run's own plots and report are the run's to redraw, named or not.
    assert main(["plots", str(finished_run)]) == 0 and main(["plots", str(finished_run)]) == 0
    assert main(["plots", str(finished_run), "--out", str(finished_run / "plots")]) == 0
    assert main(["report", str(finished_run), "--out", str(finished_run / "report.html")]) == 0
    # Another image into the same folder: its own pictures, the model's drawn again.
    other = sorted((finished_run.parent / "bacteria" / "2cell").glob("*.tif"))[0]
    assert main(["inspect", str(finished_run), str(other), "--out", str(look)]) == 0
    assert len(list(look.glob("*.png"))) == 6

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.errors import CnnlabError
from cnnlab.export import load, predict, read_model_meta, save_model
from cnnlab.models import create_model
from cnnlab.train import fit


@pytest.fixture(scope="module")
def trained(mnist_small, tmp_path_factory):
    train, test = mnist_small
    model = create_model("lenet5", in_chans=1, num_classes=10, input_size=(28, 28))
    fit(model, train, None, epochs=2, batch_size=25)
    folder = tmp_path_factory.mktemp("model")
    save_model(model, folder, train.class_names, bit_depth=8, training={"epochs": 2})
    return model, folder, test


def test_round_trip_gives_identical_outputs(trained):
    model, folder, test = trained
    loaded = load(folder)
    x = test.images[:64].float()
    model.eval()
    assert torch.equal(model(x), loaded(x))
    assert loaded.class_names == tuple("0123456789")
    assert loaded.bit_depth == 8
    assert loaded.largest_source is None  # saved without it, as an older cnnlab saved
    assert torch.equal(loaded.standardize.mean, model.standardize.mean)


def test_the_largest_training_image_travels_with_the_model(trained, tmp_path):
    model, _, _ = trained
    save_model(model, tmp_path, tuple("0123456789"), largest_source=(120, 96))
    assert json.loads((tmp_path / "model.json").read_text())["largest_source"] == [120, 96]
    loaded = load(tmp_path)
    assert loaded.largest_source == (120, 96)
    save_model(loaded, tmp_path / "again", tuple("0123456789"))  # a loaded model keeps it
    assert load(tmp_path / "again").largest_source == (120, 96)
    for wrong in ((120, 0), (120,), (120.5, 96)):
        with pytest.raises(CnnlabError, match=r"^largest_source .*: give \(height, width\)"):
            save_model(model, tmp_path / "wrong", tuple("0123456789"), largest_source=wrong)
    assert not (tmp_path / "wrong").exists()


def test_metadata_is_plain_json_and_weights_are_safetensors(trained):
    _, folder, _ = trained
    meta = json.loads((folder / "model.json").read_text())
    assert meta["format"] == "cnnlab-model"
    assert meta["architecture"]["name"] == "lenet5"
    assert meta["input_size"] == [28, 28] and meta["in_chans"] == 1
    assert meta["normalization"]["mean"][0] == pytest.approx(33.3, abs=2)
    assert "torch" in meta["versions"]
    header_size = int.from_bytes((folder / "model.safetensors").read_bytes()[:8], "little")
    header = json.loads((folder / "model.safetensors").read_bytes()[8 : 8 + header_size])
    assert "standardize.mean" in header
    assert read_model_meta(folder)["class_names"] == list("0123456789")


def test_load_accepts_the_json_or_the_weights_path(trained):
    _, folder, _ = trained
    for path in (folder / "model.json", folder / "model.safetensors"):
        assert load(path).num_classes == 10


def test_bad_model_files_get_one_line_errors(trained, tmp_path):
    _, folder, _ = trained
    with pytest.raises(CnnlabError, match="no such model"):
        load(tmp_path / "missing.bin")
    with pytest.raises(CnnlabError, match=r"model\.json: missing"):
        load(tmp_path)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.json").write_text((folder / "model.json").read_text())
    weights = (folder / "model.safetensors").read_bytes()
    (broken / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    with pytest.raises(CnnlabError, match="unreadable or truncated"):
        load(broken)
    (broken / "model.json").write_text('{"hello": 1}')
    with pytest.raises(CnnlabError, match="not a cnnlab model"):
        load(broken)
    (broken / "model.json").write_text("not json")
    with pytest.raises(CnnlabError, match="unreadable model description"):
        load(broken)
    other = json.loads((folder / "model.json").read_text())
    other["architecture"]["name"] = "mlp"
    (broken / "model.json").write_text(json.dumps(other))
    (broken / "model.safetensors").write_bytes(weights)
    with pytest.raises(CnnlabError, match=r"model\.json: model 'mlp' has no option 'padding'"):
        load(broken)
    other["architecture"]["kwargs"] = {}
    (broken / "model.json").write_text(json.dumps(other))
    with pytest.raises(CnnlabError, match="do not fit mlp"):
        load(broken)


def test_predict_reads_files_and_folders(trained, tmp_path):
    model, folder, test = trained
    digits = tmp_path / "digits dir"
    digits.mkdir()
    for i in range(6):
        Image.fromarray(test.images[i, 0].numpy()).save(digits / f"digit {i} - C=0.v1.png")
    table = predict(load(folder), [digits])
    assert len(table) == 6
    assert table.columns == ["path", "predicted"] + [f"p_{d}" for d in "0123456789"]
    expected = model.eval()(test.images[:6].float()).softmax(1)
    assert torch.allclose(table.probabilities, expected, atol=1e-5)
    rows = table.rows()
    assert rows[0]["path"].endswith("digit 0 - C=0.v1.png")
    assert sum(rows[0][f"p_{d}"] for d in "0123456789") == pytest.approx(1.0, abs=1e-5)
    out = tmp_path / "preds.csv"
    table.to_csv(out)
    lines = out.read_text().splitlines()
    assert len(lines) == 7 and lines[0].startswith("path,predicted,p_0")


def test_predict_resizes_converts_and_refuses_other_bit_depths(trained, tmp_path):
    _, folder, test = trained
    big = np.kron(test.images[0, 0].numpy(), np.ones((2, 2), dtype=np.uint8))
    Image.fromarray(np.stack([big] * 3, axis=-1)).save(tmp_path / "rgb56.png")
    table = predict(load(folder), tmp_path / "rgb56.png")
    assert table.probabilities.shape == (1, 10)
    Image.fromarray(big.astype(np.uint16) * 257).save(tmp_path / "deep.png")
    with pytest.raises(CnnlabError, match="16-bit image, but the model learned on 8-bit"):
        predict(load(folder), tmp_path / "deep.png")
    with pytest.raises(CnnlabError, match="no such file"):
        predict(load(folder), tmp_path / "nothing.png")


def test_a_loaded_model_refuses_data_with_other_classes(trained):
    from cnnlab.evaluate import evaluate

    _, folder, test = trained
    loaded = load(folder)
    assert evaluate(loaded, test)["n"] == len(test)
    reordered = test.replace(class_names=tuple(reversed(test.class_names)))
    with pytest.raises(CnnlabError, match="same classes in the same order"):
        evaluate(loaded, reordered)


def test_predict_finds_files_like_training_does_and_keeps_values(trained, tmp_path):
    import tifffile

    from cnnlab.export.predict import collect_images, prepare_images

    _, folder, _ = trained
    (tmp_path / ".thumbnails").mkdir()
    Image.new("L", (28, 28)).save(tmp_path / ".thumbnails" / "x.png")
    Image.new("L", (28, 28)).save(tmp_path / "UPPER.PNG")
    assert [p.name for p in collect_images([tmp_path], "*.png")] == ["UPPER.PNG"]
    model = load(folder)
    model.bit_depth = 32
    tifffile.imwrite(tmp_path / "f.tif", np.full((28, 28), 0.75, np.float32))
    tifffile.imwrite(tmp_path / "u.tif", np.full((28, 28), 3_000_000_000, np.uint32))
    images = prepare_images(model, [tmp_path / "f.tif", tmp_path / "u.tif"]).images
    assert images.dtype == torch.float32
    assert images[0].max().item() == 0.75 and images[1].max().item() == 3e9


def _damaged_copy(folder, target, meta_change=None, weights_change=None):
    """A copy of the saved model with its description or weights edited."""
    from safetensors.torch import load_file, save_file

    target.mkdir()
    meta = json.loads((folder / "model.json").read_text())
    if meta_change:
        meta_change(meta)
    (target / "model.json").write_text(json.dumps(meta))
    state = load_file(folder / "model.safetensors")
    if weights_change:
        weights_change(state)
    save_file(state, target / "model.safetensors")
    return target


def _set(*keys_and_value):
    *keys, last, value = keys_and_value

    def change(meta):
        for key in keys:
            meta = meta[key]
        if value is KeyError:
            del meta[last]
        else:
            meta[last] = value

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_set("class_names", KeyError), "no class_names"),
        (_set("class_names", ["7"]), "1 class name.s. for a network with 10 outputs"),
        (_set("class_names", list("0123456780")), "repeats a name"),
        (_set("normalization", "std", [0.0]), "std .0.0. is not positive"),
        (_set("normalization", "mean", [float("nan")]), "mean .nan. is not finite"),
        (_set("normalization", "std", [float("inf")]), "std .inf. is not finite"),
        (_set("architecture", "input_size", "28x28"), "input_size '28x28' is not"),
        (_set("architecture", "in_chans", "1"), "in_chans '1' is not a whole number"),
        (_set("architecture", "num_classes", True), "num_classes True is not a whole number"),
        (_set("architecture", "kwargs", ["auto"]), "kwargs .'auto'. is not an object"),
        (_set("architecture", KeyError), "no architecture"),
        (_set("bit_depth", "8"), "bit_depth '8' is not one of"),
        (_set("largest_source", [28]), r"largest_source \[28\] is not \[height, width\]"),
        (_set("largest_source", [28, 0]), r"largest_source \[28, 0\] is not"),
        (_set("largest_source", [28, True]), r"largest_source \[28, True\] is not"),
        (_set("format_version", "1"), "format_version '1' is not a number"),
        (_set("in_chans", 3), "in_chans 3 differs from the architecture's 1"),
    ],
)
def test_load_refuses_a_damaged_description_naming_model_json(trained, tmp_path, change, message):
    _, folder, _ = trained
    damaged = _damaged_copy(folder, tmp_path / "damaged", meta_change=change)
    with pytest.raises(CnnlabError, match=message) as error:
        load(damaged)
    assert str(error.value).startswith(f"{damaged / 'model.json'}: ")
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("head.weight", float("nan"), "tensor 'head.weight' holds NaN or infinite values"),
        ("standardize.mean", float("inf"), "tensor 'standardize.mean' holds NaN or infinite"),
        ("standardize.std", 0.0, r"standardize.std \[0.0\] is not positive"),
        ("standardize.std", 2.0, r"standardize.std \[2.0\] differs from the normalization std"),
    ],
)
def test_load_refuses_weights_that_would_predict_nan_or_differ(
    trained, tmp_path, name, value, message
):
    _, folder, _ = trained

    def spoil(state):
        state[name] = torch.full_like(state[name], value)

    damaged = _damaged_copy(folder, tmp_path / "damaged", weights_change=spoil)
    with pytest.raises(CnnlabError, match=message) as error:
        load(damaged)
    assert str(error.value).startswith(f"{damaged / 'model.safetensors'}: ")


def test_predict_names_an_image_whose_probabilities_are_not_finite(trained, tmp_path):
    import tifffile

    _, folder, _ = trained
    model = load(folder)
    model.bit_depth = 32
    # Float images of small values standardize with a small std: 3e38 / 1e-3 overflows.
    model.standardize.set_statistics([0.5], [1e-3])
    tifffile.imwrite(tmp_path / "fine.tif", np.full((28, 28), 0.5, np.float32))
    tifffile.imwrite(tmp_path / "extreme.tif", np.full((28, 28), 3e38, np.float32))
    assert len(predict(model, tmp_path / "fine.tif")) == 1
    with pytest.raises(CnnlabError, match="no finite class probabilities") as error:
        predict(model, [tmp_path / "fine.tif", tmp_path / "extreme.tif"])
    assert str(error.value).startswith(f"{tmp_path / 'extreme.tif'}: ")


def test_to_csv_refuses_nan_and_never_half_replaces_a_file(trained, tmp_path, monkeypatch):
    from cnnlab.export import PredictionTable

    out = tmp_path / "preds.csv"
    out.write_text("the old table\n")
    names = ("a", "b")
    nan = PredictionTable(
        ("x.png", "y.png"), ("a", "a"), torch.tensor([[1.0, 0.0], [np.nan, 0.5]]), names
    )
    with pytest.raises(CnnlabError, match=r"^y\.png: the model gives no finite"):
        nan.to_csv(out)
    assert out.read_text() == "the old table\n"

    good = PredictionTable(("x.png",), ("b",), torch.tensor([[0.25, 0.75]]), names)

    def crash(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("cnnlab.files.os.replace", crash)
    with pytest.raises(CnnlabError, match=r"preds\.csv: cannot write the predictions"):
        good.to_csv(out)
    assert out.read_text() == "the old table\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["preds.csv"]  # no temporary left
    monkeypatch.undo()
    good.to_csv(out)
    assert out.read_text().splitlines() == ["path,predicted,p_a,p_b", "x.png,b,0.250000,0.750000"]


def test_evaluate_names_the_image_whose_outputs_are_not_finite(trained):
    import copy

    from cnnlab.evaluate import evaluate

    model, _, test = trained
    broken = copy.deepcopy(model)
    with torch.no_grad():
        broken.standardize.std.zero_()  # every image becomes +-inf or NaN inside the network
    with pytest.raises(CnnlabError, match="not finite numbers") as error:
        evaluate(broken, test.select(range(8)))
    assert str(error.value).startswith(f"{test.paths[0]}: ")

"""ONNX exports run in ONNX Runtime (the consumer's tool) and agree with PyTorch.

Every built-in model is exported once (untrained: agreement needs no training), in turn with one
or three channels and 8- or 16-bit statistics, and run on real images of its bit depth: MNIST
digits or the 16-bit crops of ``synth_bacteria``. A trained LeNet-5 runs on all 10,000 MNIST test
images. The reference is the eager PyTorch model; the files are read with ``onnx`` and
``onnxruntime`` directly, not with cnnlab's own reader.
"""

from __future__ import annotations

import itertools
import sys

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

import cnnlab
from cnnlab.deploy import export_model, export_onnx, load_onnx
from cnnlab.errors import CnnlabError
from cnnlab.models import create_model, list_models

#: The channels and bit depth of each model of the matrix, in turn: every pair is covered.
CONFIGS = itertools.cycle([(1, 8), (3, 16), (1, 16), (3, 8)])
MODEL_CONFIGS = [(name, *config) for name, config in zip(list_models(), CONFIGS, strict=False)]
#: Agreement demanded of ONNX Runtime with PyTorch, in any class probability.
TOLERANCE = 1e-4
SIZE = (28, 28)


@pytest.fixture(scope="module")
def images() -> dict[int, torch.Tensor]:
    """Raw 8-bit MNIST digits and 16-bit synthetic bacteria crops, resized to 28 x 28."""
    _, test = cnnlab.datasets.mnist()
    return {8: test.images[:200]}


@pytest.fixture(scope="module")
def crops16(tmp_path_factory) -> torch.Tensor:
    folder = tmp_path_factory.mktemp("crops") / "bacteria"
    cnnlab.datasets.synth_bacteria(folder, per_class=16, seed=3, min_size=16, max_size=36)
    dataset = cnnlab.datasets.load_folders(folder).resize(SIZE)
    assert dataset.bit_depth == 16 and dataset.images.dtype != torch.uint8
    return dataset.images


def tiny_model(name: str, channels: int, bit_depth: int) -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model(name, in_chans=channels, num_classes=4, input_size=SIZE)
    # Statistics in the range of the images, as training would set them.
    mean, std = (33.0, 78.0) if bit_depth == 8 else (2500.0, 900.0)
    model.standardize.set_statistics([mean] * channels, [std] * channels)
    return model.eval()


def run_onnx(path, images: torch.Tensor) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (name,) = [i.name for i in session.get_inputs()]
    return session.run(None, {name: images.float().numpy()})[0]


def assert_agrees(onnx_probabilities: np.ndarray, torch_probabilities: torch.Tensor) -> float:
    reference = torch_probabilities.numpy()
    assert onnx_probabilities.shape == reference.shape
    assert np.array_equal(onnx_probabilities.argmax(1), reference.argmax(1))
    difference = float(np.abs(onnx_probabilities - reference).max())
    assert difference <= TOLERANCE
    return difference


@pytest.mark.parametrize(("name", "channels", "bit_depth"), MODEL_CONFIGS)
def test_every_model_runs_in_onnx_runtime_as_in_pytorch(
    name, channels, bit_depth, images, crops16, tmp_path
):
    model = tiny_model(name, channels, bit_depth)
    classes = ["1cell", "2cell", "groups", "rien"]
    path = export_onnx(model, tmp_path / "m.onnx", class_names=classes, bit_depth=bit_depth)
    raw = images[8] if bit_depth == 8 else crops16
    batch = raw.expand(-1, channels, -1, -1)  # gray to RGB, as cnnlab converts channels
    with torch.no_grad():
        expected = torch.softmax(model(batch.float()), dim=1)
    assert_agrees(run_onnx(path, batch), expected)
    # The file describes itself to any ONNX tool: dynamic batch, fixed C x H x W, metadata.
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    (given,) = proto.graph.input
    dims = given.type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [channels, *SIZE]
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["cnnlab.class_names"] == '["1cell", "2cell", "groups", "rien"]'
    assert meta["cnnlab.bit_depth"] == str(bit_depth) and meta["cnnlab.model"] == name
    assert meta["cnnlab.in_chans"] == str(channels)


@pytest.fixture(scope="module")
def trained_lenet():
    """LeNet-5 after one epoch on 1,000 MNIST digits: peaked probabilities, as in real use."""
    train, test = cnnlab.datasets.mnist()
    torch.manual_seed(0)
    model = create_model("lenet5", in_chans=1, num_classes=10, input_size=SIZE)
    cnnlab.fit(
        model, train.select(range(1000)), epochs=1, optimizer="adam", lr=3e-3, batch_size=32,
        verbose=0,
    )  # fmt: skip
    model.class_names, model.bit_depth = train.class_names, 8
    return model.eval(), test


def test_trained_lenet5_agrees_on_all_10000_mnist_test_images(trained_lenet, tmp_path):
    model, test = trained_lenet
    path = export_onnx(model, tmp_path / "lenet.onnx")
    expected = cnnlab.predict_proba(model, test)
    assert len(test) == 10_000
    assert_agrees(run_onnx(path, test.images), expected)
    # Trained, not chance: the comparison is made on confident, meaningful outputs.
    assert float((expected.argmax(1) == test.labels).float().mean()) > 0.6
    # cnnlab's own runtime gives the same numbers as ONNX Runtime called directly.
    runtime = load_onnx(path)
    assert runtime.class_names == test.class_names and runtime.bit_depth == 8
    again = runtime.predict_proba(test.images[:300], batch_size=64)
    assert np.array_equal(again.numpy(), run_onnx(path, test.images[:300]))


def test_export_refuses_before_exporting(trained_lenet, tmp_path):
    model, _ = trained_lenet
    (tmp_path / "a.onnx").write_bytes(b"older")
    with pytest.raises(CnnlabError, match=r"a\.onnx: exists; .*--overwrite"):
        export_onnx(model, tmp_path / "a.onnx")
    assert (tmp_path / "a.onnx").read_bytes() == b"older"
    with pytest.raises(CnnlabError, match=r"name the file \*\.onnx"):
        export_onnx(model, tmp_path / "a.pt")
    with pytest.raises(CnnlabError, match=r"2 name.* 10 outputs"):
        export_onnx(model, tmp_path / "b.onnx", class_names=["a", "b"])
    assert not (tmp_path / "b.onnx").exists()


def test_the_largest_training_image_is_read_back_checked_or_absent(
    trained_lenet, tmp_path, monkeypatch
):
    model, _ = trained_lenet
    monkeypatch.setattr(model, "largest_source", (28, 28), raising=False)
    path = export_onnx(model, tmp_path / "lenet.onnx")
    assert load_onnx(path).largest_source == (28, 28)

    def rewritten(name: str, value: str | None):
        """The export with its metadata entry changed (None: taken out), read with onnx."""
        proto = onnx.load(str(path))
        kept = [p for p in proto.metadata_props if p.key != "cnnlab.largest_source"]
        del proto.metadata_props[:]
        proto.metadata_props.extend(kept)
        if value is not None:
            proto.metadata_props.add(key="cnnlab.largest_source", value=value)
        onnx.save(proto, str(tmp_path / name))
        return tmp_path / name

    assert load_onnx(rewritten("older.onnx", None)).largest_source is None  # an older export
    for value in ("[28]", "[28, 0]", "[28, true]", "28x28"):
        with pytest.raises(CnnlabError, match=r"damaged\.onnx: metadata cnnlab\.largest_source"):
            load_onnx(rewritten("damaged.onnx", value))


def test_foreign_and_damaged_onnx_files_are_refused_in_one_line(tmp_path):
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["x"], ["y"])],
        "foreign",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 1, 28, 28])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 1, 28, 28])],
    )
    foreign = tmp_path / "foreign.onnx"
    onnx.save(onnx.helper.make_model(graph), str(foreign))
    with pytest.raises(CnnlabError, match=r"foreign\.onnx: not an ONNX file of cnnlab"):
        load_onnx(foreign)
    damaged = tmp_path / "damaged.onnx"
    damaged.write_bytes(b"not a protobuf at all")
    with pytest.raises(CnnlabError, match=r"damaged\.onnx: not a readable ONNX model") as error:
        load_onnx(damaged)
    assert "\n" not in str(error.value)


def test_missing_onnx_package_says_what_to_install(trained_lenet, tmp_path, monkeypatch):
    model, _ = trained_lenet
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # import fails as if not installed
    with pytest.raises(CnnlabError, match=r"onnxscript.*pip install 'cnnlab\[onnx\]'"):
        export_model(model, "onnx", tmp_path / "m.onnx")

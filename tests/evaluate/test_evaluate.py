"""evaluate() on tiny models with known weights, checked against independent computations."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.data.dataset import ImageDataset
from cnnlab.errors import CnnlabError
from cnnlab.evaluate import evaluate, evaluate_subsets, per_sample, predict_proba
from cnnlab.evaluate.evaluate import (
    GRAPH_MIN_BATCHES,
    TORCHSCRIPT_DEPRECATED,
    _logits,
    inference_graph,
)
from cnnlab.models import create_model, list_models
from cnnlab.models.base import ImageClassifier

CLASSES = ("ring", "rod", "spot")


class LinearProbe(ImageClassifier):
    """Standardize -> flatten -> dropout -> linear, with fixed weights."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        super().__init__(in_chans=1, num_classes=3, input_size=(2, 2))
        self.features = nn.Sequential(nn.Flatten(), nn.Dropout(p=0.5))
        self.head = nn.Linear(4, 3)
        with torch.no_grad():
            self.head.weight.copy_(weight)
            self.head.bias.copy_(bias)


def make_model() -> LinearProbe:
    weight = torch.tensor(
        [[0.02, -0.01, 0.0, 0.01], [-0.01, 0.03, 0.01, 0.0], [0.0, 0.0, -0.02, 0.04]]
    )
    model = LinearProbe(weight, torch.tensor([0.1, -0.2, 0.05]))
    model.standardize.set_statistics([100.0], [50.0])
    return model


def make_dataset(n: int = 37, seed: int = 0, subset: str | None = "test") -> ImageDataset:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 1, 2, 2), generator=generator, dtype=torch.uint8)
    labels = torch.randint(0, 3, (n,), generator=generator)
    return ImageDataset(
        images=images,
        labels=labels,
        class_names=CLASSES,
        paths=tuple(f"img_{i}.png" for i in range(n)),
        subset=subset,
        name=f"{subset}-set",
    )


def reference_logits(model: LinearProbe, dataset: ImageDataset) -> np.ndarray:
    """The same network computed by hand in float64 NumPy (no dropout: evaluation)."""
    x = dataset.images.numpy().reshape(len(dataset), -1).astype(np.float64)
    x = (x - 100.0) / 50.0
    weight = model.head.weight.detach().double().numpy()
    bias = model.head.bias.detach().double().numpy()
    return x @ weight.T + bias


def test_predict_proba_is_softmax_of_the_network_in_eval_mode() -> None:
    model, dataset = make_model(), make_dataset()
    model.train()
    probabilities = predict_proba(model, dataset, batch_size=5)
    logits = reference_logits(model, dataset)
    expected = np.exp(logits - logits.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    np.testing.assert_allclose(probabilities.numpy(), expected, rtol=1e-5, atol=1e-7)
    assert model.training  # the caller's mode comes back
    # Same result from a raw tensor and from one big batch.
    np.testing.assert_allclose(
        predict_proba(model, dataset.images).numpy(), probabilities, atol=1e-7
    )


def test_predict_proba_keeps_eval_mode_and_uses_raw_units_for_normalized_data() -> None:
    model, dataset = make_model(), make_dataset(subset="train")
    model.eval()
    raw = predict_proba(model, dataset)
    normalized = dataset.normalize()
    np.testing.assert_allclose(predict_proba(model, normalized).numpy(), raw.numpy(), atol=1e-5)
    assert not model.training


def test_evaluate_gives_exact_accuracy_and_loss() -> None:
    model, dataset = make_model(), make_dataset(n=41)
    metrics = evaluate(model, dataset, batch_size=8)
    logits = reference_logits(model, dataset)
    predictions = logits.argmax(1)
    labels = dataset.labels.numpy()
    assert metrics["n"] == 41
    assert metrics["accuracy"] == np.sum(predictions == labels) / 41
    expected_loss = F.cross_entropy(torch.from_numpy(logits), dataset.labels).item()
    assert metrics["loss"] == pytest.approx(expected_loss, rel=1e-6)
    expected_confusion = np.zeros((3, 3), dtype=int)
    np.add.at(expected_confusion, (labels, predictions), 1)
    assert metrics["confusion"] == expected_confusion.tolist()
    assert metrics["dataset"] == "test-set" and metrics["subset"] == "test"
    assert "top2_accuracy" in metrics


def test_per_sample_arrays() -> None:
    model, dataset = make_model(), make_dataset(n=10)
    samples = per_sample(model, dataset, batch_size=3)
    logits = torch.from_numpy(reference_logits(model, dataset))
    assert samples["probabilities"].shape == (10, 3)
    np.testing.assert_array_equal(samples["predictions"], logits.argmax(1).numpy())
    np.testing.assert_array_equal(samples["labels"], dataset.labels.numpy())
    expected_loss = F.cross_entropy(logits, dataset.labels, reduction="none").numpy()
    np.testing.assert_allclose(samples["loss"], expected_loss, rtol=1e-5)
    np.testing.assert_allclose(samples["confidence"], samples["probabilities"].max(1))
    assert samples["paths"] == dataset.paths


def test_evaluate_subsets_skips_missing() -> None:
    model = make_model()
    results = evaluate_subsets(
        model,
        {"train": make_dataset(seed=1, subset="train"), "valid": None, "test": make_dataset()},
    )
    assert list(results) == ["train", "test"]
    assert results["train"]["subset"] == "train"
    assert results["test"] == evaluate(model, make_dataset())


def test_mismatched_data_is_refused_with_a_fix() -> None:
    model, dataset = make_model(), make_dataset(n=6)
    with pytest.raises(CnnlabError, match=r"resize to 2x2"):
        evaluate(model, dataset.resize((3, 3)))
    with pytest.raises(CnnlabError, match=r"channels=1"):
        evaluate(model, dataset.to_channels(3))
    fewer = dataset.replace(labels=dataset.labels.clamp(max=1), class_names=("ring", "rod"))
    with pytest.raises(CnnlabError, match=r"2 classes .* predicts 3"):
        evaluate(model, fewer)
    mixed = dataset.replace(images=[im for im in dataset.images[:5]] + [torch.zeros(1, 3, 3)])
    with pytest.raises(CnnlabError, match=r"different sizes"):
        evaluate(model, mixed)
    with pytest.raises(CnnlabError, match=r"empty"):
        evaluate(model, dataset.select([]))
    with pytest.raises(CnnlabError, match=r"resize to 2x2"):
        predict_proba(model, torch.zeros(2, 1, 4, 4))
    model.class_names = ("a", "b", "c")  # as cnnlab.load sets it
    with pytest.raises(CnnlabError, match=r"trained on \(a, b, c\)"):
        evaluate(model, dataset)
    model.class_names, model.bit_depth = CLASSES, 16
    with pytest.raises(CnnlabError, match=r"8-bit images but the model learned on 16-bit"):
        evaluate(model, dataset)


def test_non_finite_outputs_are_refused() -> None:
    model, dataset = make_model(), make_dataset(n=4)
    with torch.no_grad():
        model.head.bias.fill_(float("nan"))
    with pytest.raises(CnnlabError, match="not finite"):
        evaluate(model, dataset)


# ------------------------------------------------------------------------- inference graph
@pytest.mark.parametrize("name", list_models())
def test_inference_graph_gives_the_eager_logits_for_every_registered_model(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, in_chans=3, num_classes=4, input_size=(30, 26))
    images = torch.randint(0, 256, (GRAPH_MIN_BATCHES * 8 + 3, 3, 30, 26), dtype=torch.uint8)
    with torch.no_grad():  # batch-norm running statistics away from their initial values
        model.train()(images[:64].float())
    model.eval()
    with torch.inference_mode():
        eager = torch.cat([model(images[i : i + 8].float()) for i in range(0, len(images), 8)])
        graph = inference_graph(model, images[:8].float())
    has_convolutions = not name.startswith("mlp")  # dense-only networks stay eager
    assert isinstance(graph, torch.jit.ScriptModule) is has_convolutions
    logits = _logits(model.train(), images, batch_size=8, device="cpu")  # last batch of 3
    assert model.training
    scale = float(eager.abs().max())
    np.testing.assert_allclose(logits.numpy(), eager.numpy(), rtol=1e-4, atol=1e-5 * scale)
    assert torch.equal(logits.argmax(1), eager.argmax(1))


def test_inference_graph_leaves_unknown_and_hooked_modules_eager() -> None:
    probe = make_model().eval()  # defined in this test module, not in cnnlab: may branch
    assert inference_graph(probe, torch.zeros(4, 1, 2, 2)) is probe
    model = create_model("lenet5", in_chans=1, num_classes=3, input_size=(12, 12)).eval()
    example = torch.zeros(4, 1, 12, 12)
    assert isinstance(inference_graph(model, example), torch.jit.ScriptModule)
    calls = []
    model.head.register_forward_hook(lambda *_: calls.append(1))
    assert inference_graph(model, example) is model
    _logits(model, torch.zeros(GRAPH_MIN_BATCHES * 2, 1, 12, 12), batch_size=2, device="cpu")
    assert len(calls) == GRAPH_MIN_BATCHES  # the hook ran for every batch


def test_only_torchscripts_deprecation_notice_is_silenced() -> None:
    model = create_model("lenet5", in_chans=1, num_classes=3, input_size=(12, 12)).eval()
    example = torch.zeros(4, 1, 12, 12)
    with warnings.catch_warnings(record=True) as direct:
        warnings.simplefilter("always")
        torch.jit.freeze(torch.jit.trace(model, example, check_trace=False))
    notices = [w for w in direct if issubclass(w.category, DeprecationWarning)]
    assert notices, "torch no longer warns: the filter in inference_graph can go"
    assert all(re.match(TORCHSCRIPT_DEPRECATED, str(w.message)) for w in notices)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        graph = inference_graph(model, example)
    assert isinstance(graph, torch.jit.ScriptModule)
    assert [str(w.message) for w in caught] == []


def test_other_warnings_during_inference_reach_the_caller(monkeypatch) -> None:
    # nn.Softmax() without dim warns when it runs, which is while the graph is traced.
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Softmax()).eval()
    images = torch.zeros(GRAPH_MIN_BATCHES * 2, 1, 6, 6)
    with pytest.warns(UserWarning, match="Implicit dimension choice for softmax"):
        assert isinstance(inference_graph(model, images[:2]), torch.jit.ScriptModule)
    with pytest.warns(UserWarning, match="Implicit dimension choice for softmax"):
        _logits(model, images, batch_size=2, device="cpu")
    # Another deprecation, raised inside the filtered block, is not TorchScript's notice.
    freeze = torch.jit.freeze

    def noisy_freeze(module, *args, **kwargs):
        warnings.warn("`cnnlab.something` is deprecated", DeprecationWarning, stacklevel=2)
        return freeze(module, *args, **kwargs)

    monkeypatch.setattr(torch.jit, "freeze", noisy_freeze)
    lenet = create_model("lenet5", in_chans=1, num_classes=3, input_size=(12, 12)).eval()
    with pytest.warns(DeprecationWarning, match="cnnlab.something") as caught:
        assert isinstance(inference_graph(lenet, torch.zeros(4, 1, 12, 12)), torch.jit.ScriptModule)
    assert not any(re.match(TORCHSCRIPT_DEPRECATED, str(w.message)) for w in caught)

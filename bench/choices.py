"""Measures the speed choices cnnlab makes, so each one can be checked on another machine.

``python bench/choices.py`` prints three tables, all on the bundled MNIST:

1. training images/s of every registered convolutional model in NCHW and in channels-last
   layout (the ``cpu_channels_last`` attribute that :func:`cnnlab.fit` follows), measured
   interleaved in one process after a warm-up that leaves the network learning;
2. seconds to score 70,000 images eagerly and through the frozen TorchScript graph that
   evaluation uses (``cnnlab.evaluate.evaluate.inference_graph``), tracing included;
3. seconds to fit the normalization statistics of the 60,000 training images from an integer
   histogram (what :class:`cnnlab.data.dataset.Normalizer` does) and from a float64 copy.

Timings on a shared machine drift; the layout table is interleaved and quotes medians, so
compare the two columns of a row rather than rows of different runs.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from cnnlab.data.dataset import ImageDataset, Normalizer
from cnnlab.data.mnist import mnist
from cnnlab.evaluate.evaluate import INFERENCE_BATCH, inference_graph
from cnnlab.models import create_model, list_models

BATCH = 128
CONV_MODELS = [name for name in list_models() if not name.startswith("mlp")]


def training_step(
    name: str, images: torch.Tensor, labels: torch.Tensor, channels_last: bool
) -> Callable[[], None]:
    """One SGD step of ``name`` on a random batch, in the given layout, after 30 warm-up steps.

    The warm-up matters: a network measured before it learns anything, or fed unscaled
    pixels, can die (every ReLU off), and a dead network runs at a different speed.
    """
    torch.manual_seed(0)
    model = create_model(name, in_chans=1, num_classes=10, input_size=(28, 28))
    normalizer = Normalizer.fit(_as_dataset(images, labels))
    model.standardize.set_statistics(normalizer.mean, normalizer.std)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model.to(memory_format=layout)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9, nesterov=True)
    generator = torch.Generator().manual_seed(0)

    def step() -> None:
        index = torch.randint(0, len(images), (BATCH,), generator=generator)
        x = images[index].float().contiguous(memory_format=layout)
        loss = F.cross_entropy(model(x), labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(30):
        step()
    return step


def _as_dataset(images: torch.Tensor, labels: torch.Tensor) -> ImageDataset:
    paths = tuple(str(i) for i in range(len(images)))
    return ImageDataset(images, labels, tuple(str(c) for c in range(10)), paths, subset="train")


def layouts(images: torch.Tensor, labels: torch.Tensor, repeats: int, seconds: float) -> None:
    print(f"training images/s, batch {BATCH}, median of {repeats} interleaved repeats")
    print(f"{'model':14s} {'NCHW':>9s} {'chan-last':>9s} {'ratio':>6s}  cnnlab uses")
    for name in CONV_MODELS:
        steps = {cl: training_step(name, images, labels, cl) for cl in (False, True)}
        count = max(2, round(seconds / _step_seconds(steps[False])))
        rates: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(repeats):
            for cl, step in steps.items():
                start = time.perf_counter()
                for _ in range(count):
                    step()
                rates[cl].append(count * BATCH / (time.perf_counter() - start))
        nchw, last = (statistics.median(rates[cl]) for cl in (False, True))
        uses = create_model(name, in_chans=1, num_classes=10, input_size=(28, 28))
        choice = "channels-last" if uses.cpu_channels_last else "NCHW"
        print(f"{name:14s} {nchw:9,.0f} {last:9,.0f} {last / nchw:5.2f}x  {choice}")


def _step_seconds(step: Callable[[], None]) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def inference(images: torch.Tensor) -> None:
    print(f"\nscoring {len(images):,} images, batch {INFERENCE_BATCH}, seconds")
    print(f"{'model':14s} {'eager':>7s} {'graph':>7s} {'ratio':>6s}")
    for name in list_models():
        model = create_model(name, in_chans=1, num_classes=10, input_size=(28, 28)).eval()

        def score(network: torch.nn.Module) -> None:
            with torch.inference_mode():
                for start in range(0, len(images), INFERENCE_BATCH):
                    network(images[start : start + INFERENCE_BATCH].float())

        start = time.perf_counter()
        score(model)
        eager = time.perf_counter() - start
        start = time.perf_counter()
        with torch.inference_mode():
            graph = inference_graph(model, images[:INFERENCE_BATCH].float())
        score(graph)
        traced = time.perf_counter() - start
        print(f"{name:14s} {eager:7.2f} {traced:7.2f} {eager / traced:5.1f}x")


def normalization(images: torch.Tensor, labels: torch.Tensor) -> None:
    dataset = _as_dataset(images, labels)
    start = time.perf_counter()
    fitted = Normalizer.fit(dataset)
    histogram = time.perf_counter() - start
    start = time.perf_counter()
    plane = images[:, 0].to(torch.float64)
    mean, std = float(plane.mean()), float(plane.std(correction=0))
    copy = time.perf_counter() - start
    print(f"\nnormalization statistics of {len(images):,} images, seconds")
    print(f"histogram {histogram:.3f} (mean {fitted.mean[0]:.6f}, std {fitted.std[0]:.6f})")
    print(f"float64   {copy:.3f} (mean {mean:.6f}, std {std:.6f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9, help="interleaved repeats (9)")
    parser.add_argument("--seconds", type=float, default=0.25, help="per repeat and layout")
    args = parser.parse_args()
    train, test = mnist()
    layouts(train.images, train.labels, args.repeats, args.seconds)
    inference(torch.cat([train.images, test.images]))
    normalization(train.images, train.labels)


if __name__ == "__main__":
    main()

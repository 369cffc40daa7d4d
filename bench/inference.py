"""Times the ways cnnlab could score images on a CPU, setup included, and checks each one.

``python bench/inference.py [--quick] [--repeats N] [--models a,b] [--paths a,b]`` prints a
Markdown table: for LeNet-5 and the largest built-in models (by parameters and by FLOPs), the
seconds to score MNIST's 10,000 test images in batches of 128 and the milliseconds per image
one at a time (500 images), for each path:

- ``native``: the model in eval mode under ``torch.inference_mode`` with cnnlab's native
  kernels for its conv -> pool -> ReLU stages (:mod:`cnnlab.kernels`): what cnnlab runs for the
  networks that have such stages (ReLU LeNets), where this machine built the kernels; only
  those networks get this row;
- ``eager``: the model in eval mode under ``torch.inference_mode`` on PyTorch's operators
  (``native_kernels = False``; so are all the paths below), channels-last weights where the
  model trains that way (``cpu_channels_last``);
- ``eager+fold``: the same with batch norm folded into the convolutions before it
  (``torch.nn.utils.fusion.fuse_conv_bn_eval``) and channels-last weights for every
  convolutional model: :func:`cnnlab.evaluate.evaluate.inference_network`, what cnnlab runs
  below 16 batches and where a model cannot be traced;
- ``torchscript``: ``torch.jit.trace`` + ``freeze`` + ``optimize_for_inference`` (deprecated
  in torch 2.13): :func:`cnnlab.evaluate.evaluate.inference_graph`, what cnnlab runs from 16
  batches on for networks without native stages, since it is the fastest for them here;
- ``onnxruntime``: cnnlab's ONNX export (dynamo exporter, softmax included) run by ONNX
  Runtime's CPU provider with as many intra-op threads as torch;
- ``export``: ``torch.export.export(...).module()`` with a dynamic batch axis;
- ``compile``: ``torch.compile`` (inductor), and ``compile-max`` with
  ``mode="max-autotune-no-cudagraphs"`` (only with ``--paths``: minutes of autotuning).

Setup is timed apart (trace, export, compile: for compiled models the first call of every batch
shape the workload uses, in a fresh inductor cache, once per model since a second compile in the
same process hits caches). Each model is first trained for a few hundred steps so that its
batch-norm statistics and class margins look like a real model's. Repeats are interleaved
(every path of every model, then again) because a shared machine's speed drifts; the table
quotes medians with min-max. Every path is checked against eager on every image: identical
argmax, largest absolute difference in any class probability.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import shutil
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cnnlab.data.dataset import Normalizer
from cnnlab.data.mnist import mnist
from cnnlab.evaluate.evaluate import TORCHSCRIPT_DEPRECATED, inference_network
from cnnlab.models import create_model

Runner = Callable[[torch.Tensor], torch.Tensor]  # raw float batch -> class probabilities
PATHS = ("native", "eager", "eager+fold", "torchscript", "onnxruntime", "export", "compile")
COMPILED = ("compile", "compile-max")
MODELS = ("lenet5", "cnn_dropout", "convnet_bn")
BATCH = 128


def trained(name: str, images: torch.Tensor, labels: torch.Tensor, steps: int) -> nn.Module:
    """``name`` after ``steps`` Adam steps on MNIST, in eval mode and NCHW layout."""
    torch.manual_seed(0)
    model = create_model(name, in_chans=1, num_classes=10, input_size=(28, 28))
    from cnnlab.data.dataset import ImageDataset

    dataset = ImageDataset(
        images, labels, tuple(map(str, range(10))), tuple(map(str, range(len(images))))
    )
    normalizer = Normalizer.fit(dataset)
    model.standardize.set_statistics(normalizer.mean, normalizer.std)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(steps):
        index = torch.randint(0, len(images), (BATCH,), generator=generator)
        loss = F.cross_entropy(model(images[index].float()), labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model.eval()


def _probabilities(network: nn.Module) -> Runner:
    def run(batch: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return torch.softmax(network(batch), dim=1)

    return run


def _channels_last(model: nn.Module) -> nn.Module:
    if getattr(model, "cpu_channels_last", False):
        model.to(memory_format=torch.channels_last)
    return model


def prepare(path: str, model: nn.Module, shapes: list[int]) -> Runner:
    """The runner of ``path`` for ``model``; compiled ones are called once per batch size."""
    model = copy.deepcopy(model).eval()
    example = torch.zeros(BATCH, *model.standardize.mean.shape, *model.input_size).float()
    example = example.view(BATCH, -1, *model.input_size)
    if path == "native":
        if not model.takes_native_kernels(example):
            raise NotApplicable
        return _probabilities(model)
    model.native_kernels = False  # every other path on PyTorch's operators
    if path == "eager":
        return _probabilities(_channels_last(model))
    if path == "eager+fold":
        return _probabilities(inference_network(model))
    if path == "torchscript":
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.filterwarnings("ignore", message=TORCHSCRIPT_DEPRECATED)
            traced = torch.jit.trace(model, example, check_trace=False)
            return _probabilities(torch.jit.optimize_for_inference(torch.jit.freeze(traced)))
    if path == "onnxruntime":
        from cnnlab.deploy.network import INPUT_NAME, OUTPUT_NAME
        from cnnlab.deploy.onnx import onnx_bytes
        from cnnlab.deploy.runtime import session_of

        session = session_of(onnx_bytes(model, class_names=list(map(str, range(10)))), "bench")
        # session_of turns graph optimizations to their default, ORT_ENABLE_ALL.
        return lambda batch: torch.from_numpy(
            session.run([OUTPUT_NAME], {INPUT_NAME: batch.numpy()})[0]
        )
    if path == "export":
        batch = torch.export.Dim("batch", min=1, max=4096)
        with torch.no_grad():
            program = torch.export.export(model, (example,), dynamic_shapes={"x": {0: batch}})
        return _probabilities(program.module())
    if path in COMPILED:
        mode = "max-autotune-no-cudagraphs" if path == "compile-max" else None
        runner = _probabilities(torch.compile(_channels_last(model), mode=mode))
        for size in shapes:  # the compile happens on the first call of each shape
            runner(example[:1].expand(size, *example.shape[1:]).contiguous())
        return runner
    raise ValueError(path)


class NotApplicable(Exception):
    """The path does not exist for this model (native kernels for a network without stages)."""


def score(runner: Runner, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    return torch.cat(
        [runner(images[i : i + batch_size].float()) for i in range(0, len(images), batch_size)]
    )


def _shapes(count: int, batch_size: int) -> list[int]:
    return sorted({min(batch_size, count), count % batch_size or batch_size})


def _stat(values: list[float], scale: float = 1.0, digits: int = 3) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0] * scale:.{digits}f}"
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"{mid * scale:.{digits}f} ({low * scale:.{digits}f}-{high * scale:.{digits}f})"


def _size(model: nn.Module) -> tuple[int, int]:
    params = sum(p.numel() for p in model.parameters())
    counter = FlopCounterMode(display=False)  # PyTorch's operators: the kernels step aside
    with counter, torch.no_grad():
        model(torch.zeros(1, 1, 28, 28))
    return params, counter.get_total_flops()


def compiler() -> str:
    """The C++ compiler inductor would find, or a note that there is none."""
    for name in (os.environ.get("CXX", ""), "c++", "g++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name) or name
    return "none (torch.compile would fail)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 images, 100 single, 1 repeat")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats (5)")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--paths", default=",".join(PATHS), help=f"of {PATHS + COMPILED[1:]}")
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats
    models, paths = args.models.split(","), args.paths.split(",")
    # A fresh inductor cache, so that compile times are those of a first run on a new machine.
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="cnnlab-inductor-"))

    train, test = mnist()
    many = test.images[: 2000 if args.quick else 10_000]
    single = test.images[: 100 if args.quick else 500]
    workloads = {BATCH: many, 1: single}
    networks = {
        name: trained(name, train.images, train.labels, 50 if args.quick else 300)
        for name in models
    }
    reference: dict[tuple[str, int], torch.Tensor] = {}
    for name, model in networks.items():
        eager = prepare("eager", model, [])
        for size, images in workloads.items():
            reference[name, size] = score(eager, images, size)

    setup: dict[tuple[str, str], list[float]] = {}
    times: dict[tuple[str, str, int], list[float]] = {}
    checks: dict[tuple[str, str], tuple[float, int]] = {}
    failures: dict[tuple[str, str], str] = {}
    runners: dict[tuple[str, str], Runner] = {}
    skipped: set[tuple[str, str]] = set()
    for repeat in range(repeats):
        for name, model in networks.items():
            for path in paths:
                key = (name, path)
                if key in failures or key in skipped:
                    continue
                if repeat == 0 or path not in COMPILED:
                    shapes = sorted({s for n in workloads for s in _shapes(len(workloads[n]), n)})
                    start = time.perf_counter()
                    try:
                        runners[key] = prepare(path, model, shapes)
                    except NotApplicable:
                        skipped.add(key)
                        continue
                    except Exception as error:  # a path that cannot run is a finding
                        failures[key] = f"{type(error).__name__}: {str(error).splitlines()[0]}"
                        continue
                    setup.setdefault(key, []).append(time.perf_counter() - start)
                for size, images in workloads.items():
                    start = time.perf_counter()
                    try:
                        probabilities = score(runners[key], images, size)
                    except Exception as error:
                        failures[key] = f"{type(error).__name__}: {str(error).splitlines()[0]}"
                        break
                    times.setdefault((*key, size), []).append(time.perf_counter() - start)
                    wanted = reference[name, size]
                    difference = float((probabilities - wanted).abs().max())
                    mismatches = int((probabilities.argmax(1) != wanted.argmax(1)).sum())
                    old = checks.get(key, (0.0, 0))
                    checks[key] = (max(old[0], difference), max(old[1], mismatches))

    lines = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    cpu = names[0] if names else platform.processor()
    import onnxruntime

    print(
        f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, "
        f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs ({cpu}), "
        f"load average {os.getloadavg()[0]:.1f} at the end; C++ compiler: {compiler()}; "
        f"{repeats} interleaved repeats, median (min-max)\n"
    )
    print(
        f"| model (params, FLOPs/image) | path | setup s | {len(many):,} images, batch {BATCH}, "
        f"s | batch 1, ms/image | max abs prob diff | argmax differs |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, model in networks.items():
        params, flops = _size(model)
        label = f"{name} ({params / 1e3:,.0f}k, {flops / 1e6:.1f}M)"
        for path in paths:
            key = (name, path)
            if key in skipped:
                continue
            if key in failures:
                print(f"| {label} | {path} | failed: {failures[key][:120]} | | | | |")
                continue
            difference, mismatches = checks[key]
            per_image = [t / len(single) for t in times[(*key, 1)]]
            print(
                f"| {label} | {path} | {_stat(setup[key], digits=2)} | "
                f"{_stat(times[(*key, BATCH)])} | {_stat(per_image, 1e3)} | "
                f"{difference:.1e} | {mismatches} |"
            )


if __name__ == "__main__":
    main()

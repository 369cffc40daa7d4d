"""Where one training step of LeNet-5 spends its time, before and after issue 16's changes.

Three kinds of the same network, from the same weights, trained as ``cnnlab.fit`` does (the
model's own layout, SGD with Nesterov momentum) on MNIST batches:

- "textbook": ReLU, then PyTorch's ``nn.MaxPool2d``, on PyTorch's operators;
- "pytorch": cnnlab's layer order (pooling, then ReLU: the same function and gradients, see
  ``tests/models/test_layers.py``), on PyTorch's operators (``native_kernels = False``);
- "native": what ``cnnlab.fit`` runs, each conv -> pool -> ReLU stage through cnnlab's native
  kernels (:mod:`cnnlab.kernels`) where this machine built them.

Prints images/s of each (medians of interleaved repeats) with its share of the machine's float32
matmul rate, and torch.profiler's table of the operators of one step, averaged over the
profiled steps. Usage::

    python bench/step.py [--model lenet5] [--batch-size 128] [--threads 2] [--repeats 5]

Last, the budget of issue 16's goal (``--goal``, a share of the matmul rate): the step time the
goal allows, the profile's split of the "native" step into convolution stages and the rest, and
the rate the convolutions would need with the rest as it is and with the rest halved. FLOPs are
counted as the share of peak counts them: 6 x torchinfo's forward multiply-adds per image, the
same for every kind (the native kernels skip the zeros of pooling's gradient, so they do less
arithmetic than that count).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn
from torch.profiler import profile

import cnnlab
from cnnlab import kernels
from cnnlab.models import model_summary
from cnnlab.train.loop import fit_normalizer
from run import matmul_gflops  # bench/run.py: the machine's float32 rate, measured the same way


def textbook(features: nn.Sequential) -> nn.Sequential:
    """``features`` with each ReLU back before the pooling it follows, and PyTorch's pooling."""
    layers = list(features.named_children())
    for i in range(1, len(layers)):
        if isinstance(layers[i - 1][1], nn.MaxPool2d) and isinstance(layers[i][1], nn.ReLU):
            layers[i - 1], layers[i] = layers[i], layers[i - 1]
    plain = [
        (name, nn.MaxPool2d(m.kernel_size, m.stride) if isinstance(m, nn.MaxPool2d) else m)
        for name, m in layers
    ]
    return nn.Sequential(OrderedDict(plain))


KINDS = ("textbook", "pytorch", "native")


def build(name: str, kind: str, train: cnnlab.ImageDataset) -> nn.Module:
    torch.manual_seed(0)
    model = cnnlab.create_model(name, in_chans=1, num_classes=10, input_size=(28, 28))
    normalizer = fit_normalizer(train)
    model.standardize.set_statistics(normalizer.mean, normalizer.std)
    if kind != "native":
        model.native_kernels = False
    if kind == "textbook":
        model.features = textbook(model.features)
    layout = torch.channels_last if model.cpu_channels_last else torch.contiguous_format
    return model.to(memory_format=layout).train()


def stepper(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch: int):
    """One ``fit``-like step per call: index a batch, forward, loss, backward, SGD."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    layout = torch.channels_last if model.cpu_channels_last else torch.contiguous_format
    generator = torch.Generator().manual_seed(0)

    def step() -> None:
        index = torch.randint(0, len(images), (batch,), generator=generator)
        x = images[index].contiguous(memory_format=layout)
        loss = F.cross_entropy(model(x), labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def conv_flops(model: nn.Module) -> int:
    """Training FLOPs per image of the model's convolutions, counted as the whole model's are."""
    rows = model_summary(model).rows
    return 6 * sum(row["mult_adds"] for row in rows if row["type"] == "Conv2d")


def conv_share(events) -> float:
    """The convolutions' share (forward and backward) of the profiled operators' self time:
    PyTorch's convolution operators, or the native conv -> pool -> ReLU stages (which include
    their pooling and ReLU)."""
    total = sum(e.self_cpu_time_total for e in events)
    conv = sum(
        e.self_cpu_time_total
        for e in events
        if (e.key.startswith("aten::") and "conv" in e.key) or "ConvPoolReLU" in e.key
    )
    return conv / total


def budget(rate: float, share: float, peak: float, flops: int, conv: int, goal: float) -> str:
    """What ``goal`` (a share of ``peak``) asks of the convolutions, as lines of text.

    ``rate`` is the measured images/s, ``share`` the convolutions' share of a step's time,
    ``flops`` and ``conv`` the FLOPs per image of the whole step and of its convolutions.
    Times are per image, in microseconds.
    """
    now, allowed = 1e6 / rate, flops / (goal * peak * 1e3)
    conv_us = share * now
    rest_us = now - conv_us

    def percent(us: float) -> str:  # the convolutions' rate in ``us`` as a share of peak
        return f"{conv / (us * 1e3) / peak:.0%} of peak"

    def needs(rest: float) -> str:
        left = allowed - rest
        if left <= 0:
            return "nothing is left for the convolutions"
        return f"{left:.1f} us, {conv / (left * 1e3):.0f} GFLOP/s, {percent(left)}"

    return "\n".join(
        [
            f"goal {goal:.0%} of peak: {allowed:.1f} us an image; now {now:.1f} us: "
            f"convolutions {conv_us:.1f} us ({percent(conv_us)}), the rest {rest_us:.1f} us",
            f"  the convolutions would need, with the rest as it is: {needs(rest_us)}",
            f"  with the rest halved: {needs(rest_us / 2)}",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lenet5")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=100, help="steps per timed repeat")
    parser.add_argument(
        "--goal", type=float, default=0.4, help="share of the matmul rate to budget for"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train = cnnlab.datasets.mnist()[0].raw()
    images, labels = train.images, train.labels
    models = {kind: build(args.model, kind, train) for kind in KINDS}
    steps = {kind: stepper(m, images, labels, args.batch_size) for kind, m in models.items()}
    for step in steps.values():  # oneDNN primitives, allocator growth
        for _ in range(20):
            step()
    rates: dict[str, list[float]] = {kind: [] for kind in steps}
    for _ in range(args.repeats):
        for kind, step in steps.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                step()
            rates[kind].append(args.steps * args.batch_size / (time.perf_counter() - start))
    peak = matmul_gflops()
    flops = 6 * model_summary(models["native"]).total_mult_adds
    print(
        f"{args.model}, batch {args.batch_size}, {args.threads} threads; float32 matmul "
        f"{peak:.0f} GFLOP/s; {flops / 1e6:.2f} MFLOP per training image"
    )
    for kind, values in rates.items():
        median = statistics.median(values)
        print(
            f"{kind:>8}: {median:8,.0f} images/s (min-max {min(values):,.0f}-{max(values):,.0f})"
            f", {median * flops / 1e9 / peak:.1%} of peak"
        )
    print(kernels.status())
    share = 0.0
    for kind, step in steps.items():
        with profile() as trace:
            for _ in range(args.steps):
                step()
        print(f"\n{kind}: operators of one step (averaged over {args.steps} steps)")
        events = trace.key_averages()
        print(events.table(sort_by="self_cpu_time_total", row_limit=14))
        share = conv_share(events)  # the last kind's: "native"
    rate = statistics.median(rates["native"])
    print(budget(rate, share, peak, flops, conv_flops(models["native"]), args.goal))


if __name__ == "__main__":
    main()

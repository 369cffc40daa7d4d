"""Data-parallel training over several processes, as torchrun starts them.

``torchrun --nproc-per-node N -m cnnlab train ...`` (or ``cnnlab train --nproc N``) starts N
copies of the same command with ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` in their
environment. Each copy reads the same data and options, so every decision made from them (the
split, the model, the order of batches) is the same in all of them without any message; what
only one process may decide (the run folder) or only one may know (the sums of an epoch) goes
through the helpers here. One code path serves both backends: gloo on CPUs, NCCL on GPUs.

How the work is shared (see :class:`Shard`): every process draws the same permutation of the
training set each epoch, so the global batches are those of a single process; process ``r``
holds the images whose index ``i`` has ``i % N == r`` and trains on the ones of each global batch
that it holds. Its loss is the sum over those images divided by the global batch size (times N,
which DistributedDataParallel's averaging undoes), so the summed gradient is the single-process
gradient up to the order of float additions, for any N, while each process keeps only its
share of the images in memory.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist

from cnnlab.errors import CnnlabError

T = TypeVar("T")


@dataclass(frozen=True)
class Group:
    """This process's place in a data-parallel run."""

    rank: int
    world: int
    local_rank: int

    @property
    def main(self) -> bool:
        """Only the first process writes files and prints."""
        return self.rank == 0


def launched() -> bool:
    """Whether torchrun (or a launcher like it) started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def group() -> Group | None:
    """The process group this process trains in, or None when it trains alone."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return None
    return Group(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


def is_main() -> bool:
    """True unless this is a process of a data-parallel run other than the first."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


def setup(device: torch.device) -> tuple[Group | None, torch.device]:
    """Joins the process group torchrun prepared, once; returns it and this process's device.

    On GPUs each process takes the GPU of its local rank. The group talks gloo for CPU tensors
    and, where there are GPUs, NCCL for GPU tensors: one group serves both, whichever device a
    run trains on.
    """
    if not launched():
        return None, device
    if not dist.is_available():
        raise CnnlabError("this PyTorch build has no torch.distributed; train with one process")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise CnnlabError(
                f"--nproc: process {local_rank} has no GPU of its own ({torch.cuda.device_count()} "
                "here); start at most one process per GPU"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        gpus = torch.cuda.is_available() and dist.is_nccl_available()
        dist.init_process_group("cpu:gloo,cuda:nccl" if gpus else "gloo")
    return group(), device


def finish_together() -> None:
    """Waits until every process has finished its part of the run (the first one evaluates and
    writes after training). A process that leaves early closes its connections while another
    still holds them, which now and then makes gloo abort that other process (SIGABRT)."""
    if group() is not None:
        dist.barrier()


def shutdown() -> None:
    """Leaves the process group (before the process exits, as PyTorch asks)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_sum(*values: torch.Tensor) -> list[torch.Tensor]:
    """The sums over all processes of scalar tensors (one collective call for all of them)."""
    packed = torch.stack([v.detach().double().reshape(()) for v in values])
    dist.all_reduce(packed)
    return [packed[i].to(values[i].device, values[i].dtype) for i in range(len(values))]


def gather_bytes(data: torch.Tensor) -> list[torch.Tensor]:
    """Every process's uint8 tensor of the same length (random-generator states, say)."""
    local = data.cpu()
    parts = [torch.empty_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, local)
    return parts


def agree(decide: Callable[[], T]) -> T:
    """Runs ``decide`` in the first process only and gives every process its result.

    The result must be JSON (a folder name, a small record). A :class:`CnnlabError` raised by
    ``decide`` is raised in every process, so that all of them stop together rather than
    waiting for each other; its message is printed by the first one only.
    """
    if group() is None:
        return decide()
    if dist.get_rank() == 0:
        try:
            message = {"value": decide()}
        except CnnlabError as error:
            message = {"error": str(error), "exit_code": error.exit_code}
        _broadcast_text(json.dumps(message))
    else:
        message = json.loads(_broadcast_text(None))
    if "error" in message:
        error = CnnlabError(message["error"])
        error.exit_code = message["exit_code"]
        raise error
    return message["value"]


def _broadcast_text(text: str | None) -> str:
    """The first process's text, in every process: its length, then its UTF-8 bytes."""
    data = torch.frombuffer(bytearray(text.encode()), dtype=torch.uint8) if text else None
    size = torch.tensor([0 if data is None else len(data)], dtype=torch.int64)
    dist.broadcast(size, 0)
    buffer = data if data is not None else torch.empty(int(size), dtype=torch.uint8)
    dist.broadcast(buffer, 0)
    return bytes(buffer.numpy()).decode()


@dataclass(frozen=True)
class Shard:
    """Which images of the training set one process holds, and which of each batch it trains on.

    ``rank`` holds the images ``i`` with ``i % world == rank``, stored in order, so image ``i``
    is its row ``i // world``.
    """

    rank: int
    world: int

    def take(self, images: torch.Tensor) -> torch.Tensor:
        """This process's share of a set (a copy, so that the whole set can be freed)."""
        return images[self.rank :: self.world].clone()

    def positions(self, batch: torch.Tensor) -> torch.Tensor:
        """Positions in a global batch of the images this process holds."""
        return torch.nonzero(batch % self.world == self.rank).flatten()

    def rows(self, batch: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Rows of this process's share for the images at ``positions`` of ``batch``."""
        return batch[positions] // self.world

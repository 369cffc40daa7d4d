"""``cnnlab train --nproc N``: the same command started N times by torchrun's own launcher.

It is exactly ``torchrun --nproc-per-node N -m cnnlab train ...`` without ``--nproc``: PyTorch's
elastic launcher starts the processes, watches them and stops them all when one fails. The
processes meet on 127.0.0.1 at a port the launcher picks, and each gets an equal share of the
CPU cores for its threads (torchrun alone would give each one thread, with a warning).
"""

from __future__ import annotations

import logging
import os
import sys
import uuid
from collections.abc import Sequence

from cnnlab.errors import CnnlabError

#: How often the launcher looks at its processes, in seconds.
_MONITOR_INTERVAL = 0.2


def strip_nproc(argv: Sequence[str]) -> list[str]:
    """``argv`` without ``--nproc N`` (or ``--nproc=N``): the command each process runs."""
    out, skip = [], False
    for part in argv:
        if skip:
            skip = False
        elif part == "--nproc":
            skip = True
        elif not part.startswith("--nproc="):
            out.append(part)
    return out


def check_nproc(nproc: object, device: str = "auto") -> int:
    """A process count this machine can run: on CPUs, at most one process per core (more only
    take turns on the same cores), on GPUs one per GPU."""
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise CnnlabError(f"--nproc {nproc!r}: give a number of processes, 1 or more")
    import torch

    gpus = torch.cuda.device_count() if device in ("auto", "cuda") else 0
    if gpus and nproc > gpus:
        raise CnnlabError(f"--nproc {nproc}: this machine has {gpus} GPU(s); give at most {gpus}")
    cores = _cores()
    if not gpus and nproc > cores:
        raise CnnlabError(
            f"--nproc {nproc}: this machine has {cores} CPU cores; more processes than cores "
            f"only take turns on them, give at most {cores}"
        )
    return nproc


def _cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def launch(argv: Sequence[str], nproc: int) -> int:
    """Runs ``cnnlab`` with ``argv`` in ``nproc`` processes on this machine; their exit code.

    Each process's own errors are printed by that process (the first one prints user errors for
    all); the launcher's report of a failed process is left out, as it adds nothing to them.
    """
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    # The launcher logs each process it stops and each signal it passes on; the processes say
    # themselves what went wrong and how to go on.
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("torch.distributed.elastic"):
            logging.getLogger(name).setLevel(logging.CRITICAL)

    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, _cores() // nproc)))
    # gloo talks over the loopback interface, never another address of this machine.
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=f"cnnlab-{uuid.uuid4().hex[:8]}",
        rdzv_backend="c10d",
        rdzv_endpoint="127.0.0.1:0",
        max_restarts=0,
        monitor_interval=_MONITOR_INTERVAL,
        local_addr="127.0.0.1",
    )
    try:
        elastic_launch(config, entrypoint=sys.executable)("-m", "cnnlab", *argv)
    except SignalException:
        # Ctrl-C (or a kill) reached the processes too; the first one said how to resume.
        return 130
    except ChildFailedError as failure:
        codes = [f.exitcode for f in failure.failures.values() if f.exitcode is not None]
        positive = [code for code in codes if code > 0]
        return positive[0] if positive else 1
    return 0

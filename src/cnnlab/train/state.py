"""The training state saved after every epoch, and how a resumed run takes it back.

The last epoch's weights, the best epoch's weights, the optimizer's moments, the random
generators and all the bookkeeping go into one file (see :mod:`cnnlab.train.checkpoint`), tied to
the configuration by a digest, so that a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from cnnlab.errors import CnnlabError
from cnnlab.runs.folder import target_of
from cnnlab.train.callbacks import BestWeights, EarlyStopping, TrainContext
from cnnlab.train.checkpoint import (
    config_digest,
    optimizer_from_parts,
    optimizer_to_parts,
    prefixed,
    save_checkpoint,
)
from cnnlab.train.config import TrainConfig

if TYPE_CHECKING:
    from cnnlab.train.loop import History


class TrainingState:
    """Writes the whole training state after every epoch, so a run can resume from it."""

    def __init__(self, folder: Path, config: TrainConfig) -> None:
        self.folder = folder
        self.digest = _digest(config)

    def save(
        self,
        loop: TrainContext,
        history: History,
        best: BestWeights,
        stopper: EarlyStopping | None,
        generators: dict[str, torch.Tensor],
    ) -> None:
        """``generators`` holds the random-generator states besides the model's and the
        shuffle's: the augmentation's, and those of the other processes of a data-parallel run."""
        model, optimizer = loop.model, loop.optimizer
        tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
        tensors.update({f"best.{k}": v for k, v in (best.state or {}).items()})
        optim_tensors, optim_meta = optimizer_to_parts(optimizer.state_dict())
        tensors.update(optim_tensors)
        tensors["rng.torch"] = torch.get_rng_state()
        tensors["rng.shuffle"] = loop.generator.get_state()
        tensors.update(generators)
        if loop.device.startswith("cuda"):
            # Dropout on a GPU draws from the device's own generator.
            tensors["rng.cuda"] = torch.cuda.get_rng_state(loop.device)
        meta = {
            "epoch": loop.epoch,
            "planned_epochs": loop.epochs,
            "config_digest": self.digest,
            "optimizer": optim_meta,
            "schedule": loop.schedule.state_dict(),
            "history": history.rows,
            "stop_reason": history.stop_reason,
            "best": best.state_dict(),
            "early_stopping": stopper.state_dict() if stopper else None,
        }
        save_checkpoint(self.folder, tensors, meta)


def _digest(config: TrainConfig) -> str:
    # Epochs may change when a finished run is extended; everything else must match.
    described = config.to_dict()
    described.pop("epochs")
    return config_digest(described)


def restore(
    checkpoint: tuple[dict[str, torch.Tensor], dict],
    state: TrainingState,
    loop: TrainContext,
    history: History,
    best: BestWeights,
    stopper: EarlyStopping | None,
    rank: int = 0,
) -> tuple[int, dict[str, torch.Tensor]]:
    """Loads a saved training state into the loop's objects.

    Returns the epoch it ended and the saved tensors, from which the loop takes the states of
    its other generators. ``rank`` picks this process's dropout generator in a data-parallel run.
    """
    tensors, meta = checkpoint
    config, where = loop.config, target_of(state.folder.parent)
    if meta.get("config_digest") != state.digest:
        raise CnnlabError(
            f"{state.folder}: the checkpoint was saved with other training options than "
            f"{where} holds now; it cannot be resumed, start a new run"
        )
    planned = meta.get("planned_epochs", config.epochs)
    if config.schedule in ("cosine", "onecycle") and planned != config.epochs:
        raise CnnlabError(
            f"{where}: its {config.schedule} schedule was planned for {planned} epochs "
            f"and cannot be stretched to {config.epochs}; resume without --epochs, or start a "
            "new run"
        )
    if int(meta["epoch"]) > config.epochs:
        raise CnnlabError(
            f"{where}: {meta['epoch']} epochs are trained already; --epochs cannot be fewer"
        )
    loop.model.load_state_dict(prefixed(tensors, "model."))
    loop.optimizer.load_state_dict(optimizer_from_parts(tensors, meta["optimizer"]))
    loop.schedule.load_state_dict(meta["schedule"])
    torch.set_rng_state(tensors.get(f"rng.torch.{rank}", tensors["rng.torch"]))
    loop.generator.set_state(tensors["rng.shuffle"])
    if "rng.cuda" in tensors and loop.device.startswith("cuda"):
        # A data-parallel run saved each GPU's generator (fit); one GPU, only its own.
        torch.cuda.set_rng_state(tensors.get(f"rng.cuda.{rank}", tensors["rng.cuda"]), loop.device)
    history.rows.extend(meta["history"])
    history.stop_reason = meta.get("stop_reason")
    best.load_state_dict(meta.get("best") or {})
    best.state = prefixed(tensors, "best.") or None
    history.best_epoch = best.best_epoch
    if stopper is not None and meta.get("early_stopping"):
        stopper.load_state_dict(meta["early_stopping"])
    return int(meta["epoch"]), tensors

"""Fine-tuning: a run that starts from another run's weights, its features frozen or not.

``--init-from RUN`` reads a finished run (or a saved model folder) with the safe loader of
:mod:`cnnlab.export.saved` (safetensors and JSON, never a pickle). The new network is the
source's architecture: the model, its options, the image size and the channels default to the
source's, and options given against it must still fit its weights. The head is kept when the
classes are the same (the same names in the same order) and re-made, freshly initialised from
the run's seed, when they differ. ``--freeze features`` trains the head alone.

Input scaling: the new run keeps the source network's own standardization (the mean and
standard deviation stored in its weights), and fits none on the new data. The features learned
on inputs scaled that way (with ``--freeze`` they and their batch-norm statistics stay exactly
as learned), and the new training set, a few dozen crops of perhaps other classes, would give
statistics that shift with its class mix rather than with the microscope. This is also what a
pretrained network means elsewhere: its preprocessing travels with its weights. Data of another
bit depth than the source's is therefore refused: its counts are on another scale.

The starting weights are copied into the run's ``checkpoints/init.safetensors`` before its
``config.json`` is written, so a resumed run never reads the source again: the source may
change or disappear once the run has started, and resuming still gives the identical run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from cnnlab.data.dataset import Normalizer
from cnnlab.data.split import Split
from cnnlab.errors import CnnlabError
from cnnlab.export.saved import META_NAME, WEIGHTS_NAME, load, read_model_meta
from cnnlab.files import parse_json, to_json, write_tensors
from cnnlab.models.options import format_option, parse_model_options
from cnnlab.runs import folder as runs
from cnnlab.train.freeze import freeze_record
from cnnlab.train.options import DEFAULT_MODEL, RunConfig

#: The starting weights, beside the training state, in the run's checkpoints folder.
INIT_NAME = "init.safetensors"
_INIT_FORMAT = "cnnlab-init"
HEAD = "head."


@dataclass(frozen=True)
class Source:
    """The finished run or model folder a run starts from, as read before anything is written.

    ``given`` is the path as the user typed it; ``overrides`` are the flags given against the
    source's architecture (``--size 32``), which an error names when the weights do not fit.
    """

    given: str
    folder: Path
    meta: dict
    overrides: tuple[str, ...] = ()


@dataclass
class Start:
    """What a fine-tuning run starts from: the weights to load and where they came from.

    ``state`` lacks the head's tensors when the head is re-made; ``provenance`` is the record
    that ``config.json``, ``run.json``, ``model.json`` and the report carry.
    """

    state: dict[str, torch.Tensor]
    provenance: dict

    def normalizer(self) -> Normalizer:
        """The source's input standardization (see the module's note on input scaling)."""
        mean = self.state["standardize.mean"].tolist()
        std = self.state["standardize.std"].tolist()
        return Normalizer(tuple(mean), tuple(std))


def resolve(config: RunConfig) -> tuple[RunConfig, Source | None]:
    """``config`` with the network options it left open filled in: the source's, or the default.

    Only the source's ``model.json`` is read here, so a bad ``--init-from`` fails before any
    data is read; its weights are read by :func:`starting_point`.
    """
    if config.freeze == "features" and config.init_from is None:
        # A legitimate experiment (how good are random features?), but rarely what is meant.
        warnings.warn(
            "--freeze features without --init-from: only the head trains, on features frozen "
            "at their random initial values",
            stacklevel=2,
        )
    if config.init_from is None:
        return dataclasses.replace(config, model=config.model or DEFAULT_MODEL), None
    if config.train.normalize != "zscore":
        raise CnnlabError(
            f"--normalize {config.train.normalize}: with --init-from the network keeps the "
            "source's input scaling; leave --normalize out"
        )
    folder = source_folder(config.init_from)
    meta = read_model_meta(folder)
    arch = meta["architecture"]
    overrides = []
    model, options = config.model, list(config.model_option)
    if model is not None and model != arch["name"]:
        overrides.append(f"--model {model}")
        if options:
            overrides.append("--model-option " + " ".join(options))
    else:
        model = arch["name"]
        given = parse_model_options(options, model)
        if given:
            overrides.append("--model-option " + " ".join(options))
        merged = {**arch.get("kwargs", {}), **given}
        options = [f"{key}={format_option(value)}" for key, value in merged.items()]
    size = tuple(arch["input_size"])
    if config.size is not None and tuple(config.size) != size:
        overrides.append(f"--size {config.size[0]}x{config.size[1]}")
    if config.channels is not None and config.channels != arch["in_chans"]:
        overrides.append(f"--channels {config.channels}")
    resolved = dataclasses.replace(
        config,
        model=model,
        model_option=options,
        size=config.size or size,
        channels=config.channels or arch["in_chans"],
    )
    return resolved, Source(config.init_from, folder, meta, tuple(overrides))


def source_folder(given: str) -> Path:
    """The finished run or saved model folder that ``--init-from`` names; one line if none."""
    flag = f"--init-from {given}"
    if not str(given).strip():
        raise CnnlabError("--init-from '': give a finished run or model folder")
    path = Path(given).expanduser().absolute()
    if runs.is_partial(path):
        raise CnnlabError(
            f"{flag}: this is the unfinished part of the run {runs.target_of(path)}; wait for "
            f"it to finish, or finish it with 'cnnlab train --resume "
            f"{runs.quoted(runs.target_of(path))}'"
        )
    if not path.exists():
        if runs.partial_of(path).exists():
            raise CnnlabError(
                f"{flag}: this run has not finished (it is still training or was interrupted); "
                f"wait for it, or finish it with 'cnnlab train --resume {runs.quoted(path)}'"
            )
        raise CnnlabError(f"{flag}: no such run or model folder; check the path")
    folder = path.parent if path.is_file() and path.name in (META_NAME, WEIGHTS_NAME) else path
    if not folder.is_dir():
        raise CnnlabError(f"{flag}: not a run or model folder; give a finished run's folder")
    if runs.is_run_folder(folder) and not (folder / runs.FINISHED).is_file():
        raise CnnlabError(
            f"{flag}: this run has not finished ({runs.FINISHED} missing); finish it with "
            f"'cnnlab train --resume {runs.quoted(folder)}' first"
        )
    for name in (META_NAME, WEIGHTS_NAME):
        if not (folder / name).is_file():
            raise CnnlabError(
                f"{flag}: no {name} in it; give the folder of a finished cnnlab run or model"
            )
    return folder.resolve()  # links followed: the record names the real folder


def starting_point(source: Source, model: nn.Module, split: Split) -> Start:
    """The source's weights for ``model``, checked against it and the new data.

    Raises a one-line error when the architectures differ (naming the flags given against the
    source's), or when the data's bit depth differs from the source's.
    """
    flag = f"--init-from {source.given}"
    weights = source.folder / WEIGHTS_NAME
    digest = sha256_of(weights)
    state = load(source.folder).state_dict()
    meta = source.meta
    depth, new_depth = int(meta.get("bit_depth", 8)), split.train.bit_depth
    if depth != new_depth:
        raise CnnlabError(
            f"{flag}: the network learned on {depth}-bit images and --data holds {new_depth}-bit "
            "ones, whose counts its input scaling does not fit; convert the images, or train "
            "from scratch"
        )
    classes = list(split.train.class_names)
    keep_head = list(meta["class_names"]) == classes
    target = model.state_dict()
    for key, tensor in target.items():
        if key.startswith(HEAD) and not keep_head:
            continue
        found = state.get(key)
        if found is None or found.shape != tensor.shape:
            has = "absent" if found is None else _shape(found)
            _mismatch(source, f"{key}: {_shape(tensor)} here, {has} in the source")
    unused = sorted(set(state) - set(target))
    if unused:
        _mismatch(source, f"{unused[0]}: in the source, absent here")
    kept = {
        key: value.clone() for key, value in state.items() if keep_head or not key.startswith(HEAD)
    }
    provenance = {
        "from": source.given,
        "path": str(source.folder),
        "weights_sha256": digest,
        "source_model": meta["architecture"]["name"],
        "source_classes": list(meta["class_names"]),
        "head": "kept" if keep_head else "re-made",
        "classes": classes,
        "normalization": "source",
    }
    return Start(kept, provenance)


def _shape(tensor: torch.Tensor) -> str:
    return "x".join(map(str, tensor.shape)) or "a scalar"


def _mismatch(source: Source, detail: str) -> None:
    arch = source.meta["architecture"]
    wanted = f"{arch['name']} on {arch['in_chans']}x{arch['input_size'][0]}x{arch['input_size'][1]}"
    if source.overrides:
        raise CnnlabError(
            f"{', '.join(source.overrides)}: the network does not fit the weights of "
            f"--init-from {source.given} ({detail}); leave it out to use the source's "
            f"architecture ({wanted})"
        )
    raise CnnlabError(f"--init-from {source.given}: its weights do not fit ({detail})")


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file, read in blocks (model files can be large)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ------------------------------------------------------------------------------ run folder


def save_start(checkpoints: Path, start: Start) -> None:
    """Copies the starting weights and their provenance into the run (before its config)."""
    checkpoints.mkdir(parents=True, exist_ok=True)
    header = {"format": _INIT_FORMAT, "provenance": to_json(start.provenance)}
    write_tensors(checkpoints / INIT_NAME, start.state, metadata=header)


def saved_start(folder: Path) -> Start | None:
    """The starting weights a run recorded, or None for a run not started from another.

    A run that records a source but lacks its copy cannot be resumed identically: refused.
    """
    if not (runs.read_config(folder).get("init") or {}).get("from"):
        return None
    path = folder / runs.CHECKPOINTS / INIT_NAME
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
            if header.get("format") != _INIT_FORMAT:
                raise ValueError("not a cnnlab starting-weights file")
            state = {key: handle.get_tensor(key) for key in list(handle.keys())}
        provenance = parse_json(header["provenance"])
    except (OSError, SafetensorError, ValueError, KeyError) as error:
        raise CnnlabError(
            f"{path}: the run's starting weights are unreadable ({error}); it cannot be "
            "resumed, start it again"
        ) from error
    return Start(state, provenance)


def describe(start: Start | None, model: nn.Module, config: RunConfig) -> dict | None:
    """The ``init`` record of ``config.json`` and ``run.json`` (None when there is nothing)."""
    if start is None and config.freeze == "none":
        return None
    record = dict(start.provenance) if start is not None else {"from": None}
    record.update(freeze_record(model, config.freeze))
    return record

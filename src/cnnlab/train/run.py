"""The main job: from data specs to a finished run folder.

A run folder is a contract that other tools read (the report, ``cnnlab evaluate``, ``--resume``):
``config.json`` (every option, resolved), ``history.csv``, ``metrics.json``, ``model.json`` and
``model.safetensors``, ``split.csv`` for folder data, and ``checkpoints/`` for resuming. Nothing
in an existing folder is overwritten unless the user says ``overwrite``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib
import json
import shutil
import sys
import threading
import tomllib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from cnnlab.data.augment import augment
from cnnlab.data.dataset import ImageDataset, Normalizer
from cnnlab.data.folders import load_folders
from cnnlab.data.mnist import mnist
from cnnlab.data.sources import BUILTIN as BUILTIN_DATA
from cnnlab.data.split import (
    Split,
    apply_manifest,
    balance_warnings,
    carve_validation,
    format_class_table,
    split_dataset,
    write_manifest,
)
from cnnlab.errors import CnnlabError
from cnnlab.evaluate import evaluate_subsets, format_metrics
from cnnlab.export.saved import save_model
from cnnlab.models import create_model
from cnnlab.train.callbacks import CSVLogger, ProgressBar
from cnnlab.train.checkpoint import write_json
from cnnlab.train.config import TrainConfig
from cnnlab.train.loop import History, fit, resolve_device

DEFAULT_FOLDER_SIZE = (32, 32)
MAX_UPSCALE = 2.0  # enlarging an image more than this invents no detail: refuse by default
# Everything cnnlab writes into a run folder: --overwrite deletes these names and nothing else.
RUN_CONTENTS = frozenset(
    {
        "config.json",
        "history.csv",
        "metrics.json",
        "model.json",
        "model.safetensors",
        "run.json",
        "split.csv",
        "report.html",
        "checkpoints",
        "plots",
        "tensorboard",
    }
)


@dataclass
class RunConfig:
    """Everything a training run needs besides the hyperparameters in ``train``.

    ``split`` holds percentages: for folder data train/valid/test (e.g. 60, 30, 10); for MNIST,
    which brings its own test set, the train/valid shares of its 60,000 training images.
    ``size`` is (height, width) or None for the data's own size (folder data of mixed sizes
    then goes to 32x32). ``augment`` holds specs such as ``rotate:90,-90`` or ``flip``.
    """

    data: list[str] = field(default_factory=lambda: ["mnist"])
    pattern: str | None = None
    size: tuple[int, int] | None = None
    channels: int | None = None
    split: tuple[float, ...] | None = None
    equalize: bool = False
    augment: list[str] = field(default_factory=list)
    model: str = "lenet5"
    out: str | None = None
    overwrite: bool = False
    skip_bad: bool = False
    plane: int | None = None
    cache: bool = True
    tensorboard: bool = False
    report: bool = True
    quiet: bool = False
    train: TrainConfig = field(default_factory=TrainConfig)

    @classmethod
    def from_options(cls, options: dict) -> RunConfig:
        """Builds a config from flat option names (CLI flags or TOML keys, '-' or '_')."""
        options = {
            key.replace("-", "_"): value for key, value in options.items() if value is not None
        }
        aliases = {"wd": "weight_decay"}
        # TOML files may spell the CLI's negative flags as they are typed.
        for negative, positive in (("no_report", "report"), ("no_cache", "cache")):
            if negative in options:
                options[positive] = not options.pop(negative)
        train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
        run_fields = {f.name for f in dataclasses.fields(cls)} - {"train"}
        run_options, train_options = {}, {}
        for key, value in options.items():
            key = aliases.get(key, key)
            if key in run_fields:
                run_options[key] = value
            elif key in train_fields:
                train_options[key] = value
            else:
                raise CnnlabError(f"unknown option {key!r}; see 'cnnlab train --help'")
        if isinstance(run_options.get("data"), str):
            run_options["data"] = [run_options["data"]]
        if "data" in run_options:
            # Absolute, so that the run folder works from any directory (resume, evaluate).
            run_options["data"] = [
                d if d in BUILTIN_DATA else str(Path(d).absolute()) for d in run_options["data"]
            ]
        if isinstance(run_options.get("augment"), str):
            run_options["augment"] = [run_options["augment"]]
        if "size" in run_options:
            run_options["size"] = parse_size(run_options["size"])
        if "split" in run_options:
            run_options["split"] = parse_split(run_options["split"])
        return cls(**run_options, train=TrainConfig(**train_options))

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["train"] = self.train.to_dict()
        return data


def parse_size(value: object) -> tuple[int, int]:
    """``28``, ``"28"``, ``"32x48"`` or ``[32, 48]`` as (height, width)."""
    try:
        if isinstance(value, int):
            parts = [value, value]
        elif isinstance(value, str):
            parts = [int(v) for v in value.lower().replace(",", "x").split("x")]
            parts = parts * 2 if len(parts) == 1 else parts
        else:
            parts = [int(v) for v in value]
    except (TypeError, ValueError):
        parts = []
    if len(parts) != 2 or min(parts) < 1:
        raise CnnlabError(f"--size {value!r} is not a size; write it as 28 or HxW, e.g. 32x48")
    return parts[0], parts[1]


def parse_split(value: object) -> tuple[float, ...]:
    """``"60,30,10"`` or a list of numbers as a tuple of percentages."""
    try:
        parts = [float(v) for v in (value.split(",") if isinstance(value, str) else value)]
    except (TypeError, ValueError):
        parts = []
    if len(parts) not in (2, 3) or any(p < 0 for p in parts) or abs(sum(parts) - 100) > 1e-6:
        raise CnnlabError(
            f"--split {value!r}: give 2 or 3 percentages that sum to 100, e.g. 60,30,10"
        )
    return tuple(parts)


def load_toml(path: str | Path) -> dict:
    """Options from a TOML file: flat keys, or a [train] table, named like the CLI flags."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise CnnlabError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise CnnlabError(f"{path}: not a valid TOML file ({error})") from error
    flat = {k: v for k, v in data.items() if not isinstance(v, dict)}
    for table in data.values():
        if isinstance(table, dict):
            flat.update(table)
    if "data" in flat:
        # Folders in a config file are relative to the file, not to where cnnlab runs.
        folders = [flat["data"]] if isinstance(flat["data"], str) else flat["data"]
        flat["data"] = [
            d if d in BUILTIN_DATA else str(path.parent / Path(d).expanduser()) for d in folders
        ]
    return flat


# --------------------------------------------------------------------------------- data


def load_data(config: RunConfig) -> Split:
    """Reads, converts, resizes and splits the data named in ``config``."""
    if not config.data:
        raise CnnlabError("--data: name at least one data source (mnist or a folder)")
    if "mnist" in config.data:
        if len(config.data) > 1:
            raise CnnlabError(
                "--data mnist cannot be merged with folders; train on one or the other"
            )
        split = _mnist_split(config)
    else:
        dataset = _shape(_load_folders(config), config)
        split = split_dataset(
            dataset, config.split or (60, 30, 10), seed=config.train.seed, equalize=config.equalize
        )
    return split


def _shape(dataset: ImageDataset, config: RunConfig) -> ImageDataset:
    if config.channels is not None:
        dataset = dataset.to_channels(config.channels)
    size = config.size
    if size is None and not dataset.uniform:
        size = DEFAULT_FOLDER_SIZE
        lo, hi = min(dataset.sizes()), max(dataset.sizes())
        warnings.warn(
            f"images range from {lo[0]}x{lo[1]} to {hi[0]}x{hi[1]}; resizing all to "
            f"{size[0]}x{size[1]} (choose with --size)",
            stacklevel=2,
        )
    if size is None:
        return dataset
    small = dataset.too_small(size, MAX_UPSCALE)
    if small and not config.skip_bad:
        h, w = dataset.sizes()[small[0]]
        raise CnnlabError(
            f"{dataset.paths[small[0]]}: {h}x{w} pixels is too small for --size "
            f"{size[0]}x{size[1]} (more than {MAX_UPSCALE:g}x enlargement; {len(small)} such "
            "image(s)); choose a smaller --size, or --skip-bad to leave them out"
        )
    if small:
        warnings.warn(
            f"left out {len(small)} image(s) too small for {size[0]}x{size[1]}, e.g. "
            f"{dataset.paths[small[0]]}",
            stacklevel=2,
        )
        dataset = dataset.select(sorted(set(range(len(dataset))) - set(small)))
    return dataset.resize(size)


def _mnist_split(config: RunConfig) -> Split:
    train, test = mnist()
    train, test = _shape(train, config), _shape(test, config)
    shares = config.split or (90.0, 10.0)
    if len(shares) == 3:
        raise CnnlabError(
            "--split for mnist takes train,valid shares of its training set (e.g. 90,10); "
            "its test set is fixed"
        )
    if shares[1] == 0:
        return Split(train=train.with_subset("train"), valid=None, test=test)
    train, valid = carve_validation(train, shares[1], seed=config.train.seed)
    return Split(train=train, valid=valid, test=test)


# --------------------------------------------------------------------------------- run


def prepare_out(config: RunConfig) -> Path:
    """A new run folder, or an old run's folder emptied when ``overwrite`` is given."""
    if config.out is None:
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        data = "mnist" if "mnist" in config.data else Path(config.data[0]).name or "data"
        out = Path("runs") / f"{stamp}-{config.model}-{data}"
        suffix = 1
        while out.exists():
            suffix += 1
            out = out.with_name(f"{stamp}-{config.model}-{data}-{suffix}")
    else:
        out = Path(config.out)
    if out.exists() and not out.is_dir():
        raise CnnlabError(f"--out {out}: exists and is not a folder; choose another path")
    if out.exists() and any(out.iterdir()):
        if not config.overwrite:
            raise CnnlabError(
                f"--out {out}: the folder is not empty; choose another folder or pass --overwrite"
            )
        foreign = sorted(c.name for c in out.iterdir() if c.name not in RUN_CONTENTS)
        if not _is_run_folder(out) or foreign:
            extra = f" (it holds {', '.join(foreign[:3])})" if foreign else ""
            raise CnnlabError(
                f"--out {out}: not a cnnlab run folder{extra}; --overwrite only replaces runs"
            )
        for child in out.iterdir():
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    out.mkdir(parents=True, exist_ok=True)
    return out


def _is_run_folder(folder: Path) -> bool:
    """A folder whose config.json is one that cnnlab wrote (not any project's config.json)."""
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(config, dict) and {"train", "resolved", "model"} <= config.keys()


def run_training(config: RunConfig, callbacks: Sequence[object] = ()) -> Path:
    """Trains, evaluates and saves one run into a new run folder; returns the folder.

    The data is read and the model built before the folder is touched, so a typo in an option
    never leaves an empty folder behind, nor empties a run that ``overwrite`` would replace.
    """
    warm_up_optimizers()
    split = load_data(config)
    model = _build_model(config, split)
    out = prepare_out(config)
    return _run(config, out, split, model, resume=False, callbacks=callbacks)


def _build_model(config: RunConfig, split: Split) -> torch.nn.Module:
    reference = split.train
    return create_model(
        config.model,
        in_chans=reference.channels,
        num_classes=reference.num_classes,
        input_size=reference.image_size,
    )


def warm_up_optimizers() -> threading.Thread:
    """Imports ``torch._dynamo`` in the background while the data loads.

    PyTorch's optimizers import it on first use, which takes over a second; reading and
    checksumming the data mostly waits in zlib and hashlib, which let other threads run, so
    doing both at once hides most of that second.
    """
    thread = threading.Thread(
        target=importlib.import_module, args=("torch._dynamo",), daemon=True, name="warm-up"
    )
    thread.start()
    return thread


def resume_training(
    run_dir: str | Path,
    epochs: int | None = None,
    quiet: bool = False,
    callbacks: Sequence[object] = (),
) -> Path:
    """Continues a run from its last checkpoint, on the same data split, up to ``epochs``.

    The result is the same as if the run had never stopped (same seeds, same order of
    batches); the run's files are rewritten in place, which is what resuming means.
    """
    out = Path(run_dir)
    saved = _read_config(out)
    finished = out / "run.json"
    if finished.exists() and (epochs is None or epochs <= (saved.train.epochs or 0)):
        reason = json.loads(finished.read_text()).get("stop_reason") or "all epochs done"
        extendable = saved.train.schedule not in ("cosine", "onecycle")
        raise CnnlabError(
            f"{out}: this run already finished ({reason}); start a new run"
            + (", or pass a larger --epochs to train on" if extendable else "")
        )
    train = saved.train if epochs is None else dataclasses.replace(saved.train, epochs=epochs)
    config = dataclasses.replace(saved, out=str(out), quiet=quiet, train=train)
    split = load_run_split(out)
    return _run(config, out, split, _build_model(config, split), resume=True, callbacks=callbacks)


def _run(
    config: RunConfig,
    out: Path,
    split: Split,
    model: torch.nn.Module,
    resume: bool,
    callbacks: Sequence[object],
) -> Path:
    stream = sys.stderr
    if not config.quiet:
        print(f"cnnlab: run folder {out}", file=stream, flush=True)
        print(format_class_table(split), file=stream)
    for problem in balance_warnings(split):
        warnings.warn(problem, stacklevel=2)
    normalizer = Normalizer.fit(split.train)
    train = split.train
    if config.augment:
        # On a GPU the augmented copies are made there, from images moved to it once.
        device = resolve_device(config.train.device)
        if device.type != "cpu" and isinstance(train.images, torch.Tensor):
            train = train.replace(images=train.images.to(device))
        train = augment(train, config.augment, seed=config.train.seed)
    config = dataclasses.replace(config, train=config.train.resolved(len(train)))
    reference = split.train
    if not resume:
        # A resumed run keeps its config.json until training succeeds with the new one.
        if "mnist" not in config.data:
            write_manifest(split, out / "split.csv")
        write_json(out / "config.json", _describe(config, split))

    hooks: list[object] = [] if config.quiet else [ProgressBar(stream)]
    hooks.append(CSVLogger(out / "history.csv"))
    if config.tensorboard:
        from cnnlab.train.tensorboard import TensorBoardLogger

        hooks.append(
            TensorBoardLogger(
                out / "tensorboard", class_names=reference.class_names, valid=split.valid
            )
        )
    hooks.extend(callbacks)
    history = fit(
        model,
        train,
        split.valid,
        config.train,
        hooks,
        normalizer=normalizer,
        checkpoint_dir=out / "checkpoints",
        resume=resume,
    )
    if resume:
        write_json(out / "config.json", _describe(config, split))
    finish_run(out, model, config, split, history)
    if config.report:
        # The run is saved already: a report that fails warns in one line and loses nothing.
        try:
            from cnnlab.inspect.report import write_report

            report = write_report(out, model=model, split=split)
            if not config.quiet:
                print(f"cnnlab: report {report}", file=stream, flush=True)
        except Exception as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
            print(f"cnnlab: warning: no HTML report ({reason})", file=stream, flush=True)
    return out


def finish_run(
    out: Path, model: torch.nn.Module, config: RunConfig, split: Split, history: History
) -> dict:
    """Evaluates every subset, saves the model and the metrics, prints the summary."""
    # ``split.train`` is the training set before augmentation: the one a user reports on.
    metrics = evaluate_subsets(
        model, {"train": split.train, "valid": split.valid, "test": split.test}
    )
    write_json(out / "metrics.json", metrics)
    save_model(
        model,
        out,
        split.train.class_names,
        bit_depth=split.train.bit_depth,
        training={"run": config.to_dict(), "best_epoch": history.best_epoch},
    )
    final_subset = next(name for name in ("test", "valid", "train") if name in metrics)
    if not config.quiet:
        final = metrics[final_subset]
        print(format_metrics(final, title=f"{final_subset} ({final['n']} images)"), file=sys.stderr)
        print(format_subset_table(metrics), file=sys.stderr)
    low, high = metrics[final_subset]["accuracy_ci"]
    print(
        f"cnnlab: {final_subset} accuracy {metrics[final_subset]['accuracy']:.2%} "
        f"(95% CI {low:.2%}-{high:.2%}), best epoch {history.best_epoch}, "
        f"{history.seconds:.1f}s training; results in {out}",
        file=sys.stderr,
        flush=True,
    )
    write_json(
        out / "run.json",
        {
            "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "epochs_run": len(history.rows),
            "best_epoch": history.best_epoch,
            "stop_reason": history.stop_reason,
            "train_seconds": round(history.seconds, 3),
        },
    )
    return metrics


def format_subset_table(metrics: dict[str, dict]) -> str:
    """One line per subset: size, loss, accuracy with its interval, kappa and macro F1."""
    lines = [
        f"{'subset':<7} {'n':>7} {'loss':>8} {'accuracy':>9} {'95% CI':>17} "
        f"{'kappa':>7} {'macro F1':>9}"
    ]
    for name, m in metrics.items():
        low, high = m["accuracy_ci"]
        f1 = "" if m.get("macro_f1") is None else f"{m['macro_f1']:.4f}"
        kappa = "" if m.get("kappa") is None else f"{m['kappa']:.4f}"
        lines.append(
            f"{name:<7} {m['n']:>7} {m['loss']:>8.4f} {m['accuracy']:>9.4f} "
            f"{f'{low:.4f}-{high:.4f}':>17} {kappa:>7} {f1:>9}"
        )
    return "\n".join(lines)


def _describe(config: RunConfig, split: Split) -> dict:
    from cnnlab import __version__

    described = config.to_dict()
    reference = split.train
    described["resolved"] = {
        "class_names": list(reference.class_names),
        "channels": reference.channels,
        "size": list(reference.image_size),
        "bit_depth": reference.bit_depth,
        "subsets": {name: len(ds) for name, ds in split.items()},
        "cnnlab": __version__,
        "torch": torch.__version__,
    }
    return described


def _read_config(out: Path) -> RunConfig:
    path = out / "config.json"
    if not path.exists():
        raise CnnlabError(f"{out}: no config.json; is this a cnnlab run folder?")
    data = json.loads(path.read_text())
    data.pop("resolved", None)
    train = data.pop("train")
    data.pop("out", None)
    config = RunConfig.from_options({**data, **train})
    return config


def _load_folders(config: RunConfig) -> ImageDataset:
    return load_folders(
        config.data,
        pattern=config.pattern,
        channels=config.channels,
        plane=config.plane,
        skip_bad=config.skip_bad,
        cache=config.cache,
    )


def evaluate_saved(
    model_path: str | Path, data: Sequence[str] | None = None, pattern: str | None = None
) -> dict[str, dict]:
    """Metrics of a saved model: on ``data`` specs, or on its run's own subsets.

    Folder data is matched to the model by class name, converted to its channels and resized
    to its input size, as at training time.
    """
    from cnnlab.data.sources import load_sources
    from cnnlab.export.saved import load

    model = load(model_path)
    if not data:
        run_dir = Path(model_path) if Path(model_path).is_dir() else Path(model_path).parent
        if not (run_dir / "config.json").exists():
            raise CnnlabError(
                f"{model_path}: not a run folder; name the data to evaluate on with --data"
            )
        split = load_run_split(run_dir)
        return evaluate_subsets(
            model, {"train": split.train, "valid": split.valid, "test": split.test}
        )
    sources = load_sources(data, pattern=pattern, channels=model.in_chans)
    return evaluate_subsets(model, {name: _fit_to_model(ds, model) for name, ds in sources.items()})


def _fit_to_model(dataset: ImageDataset, model: torch.nn.Module) -> ImageDataset:
    """The dataset relabelled to the model's class order and resized to its input size."""
    names = tuple(model.class_names)
    unknown = [c for c in dataset.class_names if c not in names]
    if unknown:
        raise CnnlabError(
            f"{dataset.name}: class(es) {', '.join(unknown)} unknown to the model, which knows "
            f"{', '.join(names)}; rename the folders or evaluate on matching data"
        )
    if dataset.bit_depth != model.bit_depth:
        raise CnnlabError(
            f"{dataset.name}: {dataset.bit_depth}-bit images, but the model learned on "
            f"{model.bit_depth}-bit images; convert them first"
        )
    mapping = torch.tensor([names.index(c) for c in dataset.class_names])
    relabelled = dataset.replace(labels=mapping[dataset.labels], class_names=names)
    return relabelled.to_channels(model.in_chans).resize(tuple(model.input_size))


def load_run_split(run_dir: str | Path) -> Split:
    """The train/valid/test split of a run, re-loaded from its config.json (and split.csv).

    Folder data is re-read and put back into the subsets the manifest records, so the report
    and later evaluations look at exactly the images the run trained and was tested on.
    """
    run_dir = Path(run_dir)
    config = _read_config(run_dir)
    manifest = run_dir / "split.csv"
    if manifest.exists():
        return apply_manifest(_shape(_load_folders(config), config), manifest)
    return load_data(config)

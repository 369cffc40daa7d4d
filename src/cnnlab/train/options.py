"""The options of a training run: one typed record for the CLI, TOML files and Python.

:class:`RunConfig` holds the run-level choices (data, model, run folder) around the training
hyperparameters of :class:`~cnnlab.train.config.TrainConfig`. Flags, ``--config`` files and
keyword arguments all go through :meth:`RunConfig.from_options`, so they share names and checks.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from cnnlab.data.sources import BUILTIN as BUILTIN_DATA
from cnnlab.data.sources import DataSpec
from cnnlab.errors import CnnlabError
from cnnlab.train.config import TrainConfig


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

    def data_spec(self) -> DataSpec:
        """The options that decide which images the run reads, and how it splits them."""
        return DataSpec(
            data=tuple(self.data),
            pattern=self.pattern,
            size=self.size,
            channels=self.channels,
            plane=self.plane,
            split=self.split,
            equalize=self.equalize,
            seed=self.train.seed,
            skip_bad=self.skip_bad,
            cache=self.cache,
        )

    def to_dict(self) -> dict:
        """The run's options as saved in its folder (``quiet`` is not one: it is how one
        invocation prints)."""
        data = dataclasses.asdict(self)
        data.pop("quiet")
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
    # Checked on its own, so that a bad value is blamed on the file even where a flag
    # overrides it.
    try:
        check_run_options(RunConfig.from_options(flat))
    except CnnlabError as error:
        raise CnnlabError(f"{path}: {error}") from None
    return flat


def check_run_options(config: RunConfig) -> None:
    """The run-level options that can be checked before any data is read.

    The hyperparameters check themselves (:meth:`TrainConfig.validate`); the data, the model's
    fit to it and the run folder are checked by the run before it writes anything.
    """

    def fail(option: str, value: object, expected: str) -> None:
        raise CnnlabError(f"--{option} {value!r}: {expected}")

    if not isinstance(config.data, list) or not all(isinstance(d, str) for d in config.data):
        fail("data", config.data, "give mnist or folder names")
    if config.pattern is not None and not isinstance(config.pattern, str):
        fail("pattern", config.pattern, "give a glob such as '*.tif'")
    if config.channels not in (None, 1, 3) or isinstance(config.channels, bool):
        fail("channels", config.channels, "must be 1 (gray) or 3 (RGB)")
    if config.plane is not None and (
        isinstance(config.plane, bool) or not isinstance(config.plane, int) or config.plane < 0
    ):
        fail("plane", config.plane, "must be a plane number, 0 or more")
    if not isinstance(config.model, str):
        fail("model", config.model, "give a network name (see 'cnnlab models')")
    if config.out is not None and not isinstance(config.out, str):
        fail("out", config.out, "give a folder name")
    if not all(isinstance(spec, str) for spec in config.augment):
        fail("augment", config.augment, "give specs such as rotate:90,-90 or flip")
    for option in ("equalize", "overwrite", "skip_bad", "cache", "tensorboard", "report", "quiet"):
        value = getattr(config, option)
        if not isinstance(value, bool):
            fail(option.replace("_", "-"), value, "must be true or false")

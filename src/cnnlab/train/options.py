"""The options of a training run: one typed record for the CLI, TOML files and Python.

:class:`RunConfig` holds the run-level choices (data, model, run folder) around the training
hyperparameters of :class:`~cnnlab.train.config.TrainConfig`. Flags, ``--config`` files and
keyword arguments all go through :meth:`RunConfig.from_options`, so they share names and checks.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from cnnlab.data.sources import BUILTIN as BUILTIN_DATA
from cnnlab.data.sources import DataSpec
from cnnlab.errors import CnnlabError
from cnnlab.train.config import TrainConfig
from cnnlab.train.flags import DATA, RUN, TRAINING, Flag, flag
from cnnlab.train.recipes import recipe_for

VALID_ON = ("valid", "test")
#: The network of a run that names none and starts from no other run.
DEFAULT_MODEL = "lenet5"
FREEZE = ("none", "features")
AUGMENT_MODES = ("static", "on-the-fly")


@dataclass
class RunConfig:
    """Everything a training run needs besides the hyperparameters in ``train``.

    ``split`` holds percentages: for folder data train/valid/test (e.g. 60, 30, 10); for MNIST,
    which brings its own test set, the train/valid shares of its 60,000 training images.
    ``size`` is (height, width) or None for the data's own size (folder data of mixed sizes
    then goes to 32x32). ``augment`` holds specs such as ``rotate:90,-90`` or ``flip``.
    """

    data: list[str] = field(
        default_factory=lambda: ["mnist"],
        metadata=flag(
            "mnist or a folder of class folders (repeatable; same-named classes merge) [mnist]",
            DATA,
            repeat=True,
            metavar="SPEC",
        ),
    )
    pattern: str | None = field(
        default=None, metadata=flag("glob selecting image files, e.g. '*.tif'", DATA)
    )
    size: tuple[int, int] | None = field(
        default=None,
        metadata=flag("resize images to H or HxW, e.g. 32 or 32x48 [the data's own]", DATA),
    )
    channels: int | None = field(
        default=None,
        metadata=flag("convert images to 1 (gray) or 3 (RGB) channels", DATA, choices=("1", "3")),
    )
    plane: int | None = field(
        default=None, metadata=flag("plane to take from multi-plane TIFF stacks", DATA)
    )
    split: tuple[float, ...] | None = field(
        default=None,
        metadata=flag(
            "train,valid[,test] percentages, stratified per class [folders: 60,30,10; mnist: "
            "90,10 of its training set]",
            DATA,
        ),
    )
    valid_on: str = field(
        default="valid",
        metadata=flag(
            "validate every epoch on the validation share, or (mnist with --split 100,0) on the "
            "test set, as the Keras notebooks do",
            DATA,
            choices=VALID_ON,
        ),
    )
    equalize: bool = field(
        default=False,
        metadata=flag(
            "undersample larger classes in the training set (every subset already keeps the "
            "class proportions, what the course's equalize=T asks)",
            DATA,
        ),
    )
    augment: list[str] = field(
        default_factory=list,
        metadata=flag(
            "augment the training set: rotate:90,-90,45 | randrot:15 | flip[:h|v|hv] | noise:0.1 "
            "| shift:2 | crop:0.8 | brightness:0.2 | contrast:0.2 | a+b (repeatable)",
            DATA,
            repeat=True,
            metavar="SPEC",
        ),
    )
    augment_mode: str = field(
        default="static",
        metadata=flag(
            "static: the augmented copies made once before training (the course's merge); "
            "on-the-fly: every image of every batch drawn afresh as one of those copies, in the "
            "memory of the plain set (an epoch is as long in both)",
            DATA,
            choices=AUGMENT_MODES,
        ),
    )
    skip_bad: bool = field(
        default=False,
        metadata=flag(
            "skip unreadable images, and images too small for --size, with a warning", DATA
        ),
    )
    cache: bool = field(
        default=True,
        metadata=flag("do not cache decoded folder images", DATA, negative="--no-cache"),
    )
    convert_bit_depth: bool = field(
        default=False,
        metadata=flag(
            "scale images of smaller bit depths to the largest (8-bit x257 to 16-bit) instead of "
            "refusing a dataset of mixed bit depths",
            DATA,
        ),
    )
    relabel: str | None = field(
        default=None,
        metadata=flag(
            "apply the label decisions of a review (relabel.csv from 'cnnlab serve') after the "
            "split: the split is drawn as before, so the test set stays comparable; a "
            "relabelled image keeps its subset with its new class, an excluded one leaves it, "
            "'keep' changes nothing",
            DATA,
            metavar="FILE",
        ),
    )
    model: str | None = field(
        default=None,
        metadata=flag(
            "network name (see 'cnnlab models') [lenet5, or the --init-from source's]", TRAINING
        ),
    )
    model_option: list[str] = field(
        default_factory=list,
        metadata=flag(
            "an option of the network, e.g. kernel=3 or hidden=256,128 (repeatable; see "
            "'cnnlab models')",
            TRAINING,
            repeat=True,
            metavar="KEY=VALUE",
        ),
    )
    init_from: str | None = field(
        default=None,
        metadata=flag(
            "start from the weights of a finished run or saved model folder (same network; "
            "its head is re-made when the classes differ)",
            TRAINING,
            metavar="RUN",
        ),
    )
    freeze: str = field(
        default="none",
        metadata=flag(
            "features: train only the head, the feature layers' weights and batch-norm "
            "statistics frozen (with --init-from: features + small classifier)",
            TRAINING,
            choices=FREEZE,
        ),
    )
    out: str | None = field(
        default=None, metadata=flag("run folder [runs/<time>-<model>-<data>]", RUN)
    )
    overwrite: bool = field(
        default=False,
        metadata=flag("replace an earlier run in --out, once the new one is complete", RUN),
    )
    tensorboard: bool = field(
        default=False,
        metadata=flag(
            "also write TensorBoard event files (pip install 'cnnlab[tensorboard]')", RUN
        ),
    )
    report: bool = field(
        default=True, metadata=flag("skip the HTML report", RUN, negative="--no-report")
    )
    quiet: bool = field(default=False, metadata=flag("print only the final line", RUN))
    train: TrainConfig = field(default_factory=TrainConfig)

    @classmethod
    def from_options(cls, options: dict, recipe: bool = False) -> RunConfig:
        """Builds a config from flat option names (CLI flags or TOML keys, '-' or '_').

        With ``recipe`` (``cnnlab train`` asks for it) a run that fits a measured recipe of
        :mod:`cnnlab.train.recipes` gets it; without, as for sweeps, resumed runs and the
        Python API, every unset option takes its general default.
        """
        options = {
            key.replace("-", "_"): value for key, value in options.items() if value is not None
        }
        # TOML files may spell options as their flags are typed: wd, no-report = true.
        aliases, negatives = {}, {}
        for option in cli_options():
            spelled = option.flag[2:].replace("-", "_")
            if option.kind == "false":
                negatives[spelled] = option.dest
            elif spelled != option.dest:
                aliases[spelled] = option.dest
        for negative, positive in negatives.items():
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
        for listed in ("augment", "model_option"):
            if isinstance(run_options.get(listed), str):
                run_options[listed] = [run_options[listed]]
        if "size" in run_options:
            run_options["size"] = parse_size(run_options["size"])
        if "split" in run_options:
            run_options["split"] = parse_split(run_options["split"])
        measured = recipe_for(run_options, train_options) if recipe else None
        if measured is not None:  # the main job: a recipe measured for its data and network
            train_options = {**measured.options, **train_options}
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
            valid_on=self.valid_on,
            seed=self.train.seed,
            skip_bad=self.skip_bad,
            cache=self.cache,
            convert_bit_depth=self.convert_bit_depth,
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
    if isinstance(flat.get("init_from", flat.get("init-from")), str):
        # A source run in a config file is relative to the file too.
        key = "init_from" if "init_from" in flat else "init-from"
        flat[key] = str(path.parent / Path(flat[key]).expanduser())
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
    if config.model is not None and not isinstance(config.model, str):
        fail("model", config.model, "give a network name (see 'cnnlab models')")
    if config.init_from is not None and not isinstance(config.init_from, str):
        fail("init-from", config.init_from, "give a finished run or model folder")
    if config.freeze not in FREEZE:
        fail("freeze", config.freeze, f"choose one of {', '.join(FREEZE)}")
    if config.relabel is not None and (
        not isinstance(config.relabel, str) or not Path(config.relabel).is_file()
    ):
        fail("relabel", config.relabel, "no such file; give the relabel.csv a review wrote")
    if config.out is not None and not isinstance(config.out, str):
        fail("out", config.out, "give a folder name")
    if not all(isinstance(spec, str) for spec in config.augment):
        fail("augment", config.augment, "give specs such as rotate:90,-90 or flip")
    if config.augment_mode not in AUGMENT_MODES:
        fail("augment-mode", config.augment_mode, f"choose one of {', '.join(AUGMENT_MODES)}")
    if config.valid_on not in VALID_ON:
        fail("valid-on", config.valid_on, f"choose one of {', '.join(VALID_ON)}")
    if config.valid_on == "test" and (
        config.data != ["mnist"] or not config.split or config.split[1] != 0
    ):
        fail("valid-on", config.valid_on, "needs --data mnist with --split 100,0")
    if not isinstance(config.model_option, list) or not all(
        isinstance(item, str) for item in config.model_option
    ):
        fail("model-option", config.model_option, "give KEY=VALUE, e.g. kernel=3")
    switches = ("equalize", "overwrite", "skip_bad", "cache", "convert_bit_depth")
    for option in (*switches, "tensorboard", "report", "quiet"):
        value = getattr(config, option)
        if not isinstance(value, bool):
            fail(option.replace("_", "-"), value, "must be true or false")


@dataclass(frozen=True)
class CliOption:
    """One ``cnnlab train`` flag, derived from a config field (see :func:`cli_options`).

    ``kind`` says how argparse reads it: ``value`` (one value of ``type``), ``append``
    (repeatable), ``true``/``false`` (a switch that sets the field true or false), ``both``
    (``--x`` and ``--no-x``).
    """

    dest: str
    flag: str
    kind: str
    type: type
    help: str
    group: str
    metavar: str | None


def cli_options() -> list[CliOption]:
    """Every field of RunConfig and TrainConfig as a command-line flag, in field order."""
    options = []
    for cls in (RunConfig, TrainConfig):
        hints = typing.get_type_hints(cls)
        for item in dataclasses.fields(cls):
            spec: Flag | None = item.metadata.get("flag")
            if spec is None:
                continue
            base = _base_type(hints[item.name])
            default = item.default if item.default is not dataclasses.MISSING else None
            if spec.negative:
                kind, name = "false", spec.negative
            elif spec.both:
                kind, name = "both", spec.name or f"--{item.name.replace('_', '-')}"
            elif base is bool:
                kind, name = "true", spec.name or f"--{item.name.replace('_', '-')}"
            else:
                kind = "append" if spec.repeat else "value"
                name = spec.name or f"--{item.name.replace('_', '-')}"
            text = spec.help
            if kind in ("value", "both") and default is not None and "[" not in spec.help:
                shown = ("on" if default else "off") if isinstance(default, bool) else default
                text += f" [{shown}]"
            # Sizes and splits are typed as text and parsed by parse_size and parse_split.
            value_type = base if base in (int, float) else str
            metavar = spec.metavar or (
                "{" + ",".join(spec.choices) + "}"
                if spec.choices
                else {int: "N", float: "X"}.get(value_type, name[2:].upper())
            )
            options.append(CliOption(item.name, name, kind, value_type, text, spec.group, metavar))
    return options


def _base_type(hint: object) -> type:
    """``int`` for ``int | None``, ``list`` for ``list[str]``, and so on."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return _base_type(args[0])
    origin = typing.get_origin(hint)
    return origin if origin is not None else hint  # type: ignore[return-value]

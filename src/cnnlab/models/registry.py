"""Model names -> builder functions, and the one place where models are created.

Every part of cnnlab (the CLI, checkpoints, exporters) creates networks through
:func:`create_model` so that each model carries a ``cnnlab_config`` that rebuilds it exactly, and
so that impossible requests (too few classes, images smaller than the network can take) fail with
one clear :class:`~cnnlab.errors.CnnlabError` before any training starts, instead of with a shape
error from deep inside PyTorch.

A builder is a function ``(in_chans, num_classes, input_size, **options) -> ImageClassifier``
whose options all have defaults; :func:`register_model` records it under a name, with the
options' defaults and type annotations read from its signature (a ``functools.partial`` of a
builder registers a preset of it). Builders find the size of their flattened features with
:func:`cnnlab.models.trace.feature_shape`, which turns "the image is too small for these
layers" into :class:`InputTooSmallError`.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import json
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cnnlab.errors import CnnlabError
from cnnlab.models.base import ImageClassifier
from cnnlab.models.trace import InputTooSmallError, output_shape

Builder = Callable[..., ImageClassifier]

#: Largest side tried when looking for the smallest input a model takes. Every model in the zoo
#: needs far less; the cap only bounds the search for a model that fails for another reason.
MAX_SEARCHED_SIZE = 128


@dataclass(frozen=True)
class _Entry:
    name: str
    description: str
    builder: Builder
    defaults: dict[str, Any]
    accepts_any_option: bool
    annotations: dict[str, Any]  # option -> its type annotation, where the builder gives one


_REGISTRY: dict[str, _Entry] = {}


def _builder_name(builder: Builder) -> str:
    return getattr(builder, "__name__", None) or repr(builder)


def _evaluated(builder: Builder, annotation: Any) -> Any:
    """An annotation written as text (``from __future__ import annotations``) as the type."""
    if not isinstance(annotation, str):
        return annotation
    function = builder
    while isinstance(function, functools.partial):
        function = function.func
    try:
        return eval(annotation, getattr(function, "__globals__", {}))  # as inspect's eval_str
    except Exception:  # a name the builder's module does not know: the default's type is used
        return annotation


def _builder_options(builder: Builder) -> tuple[dict[str, Any], bool, dict[str, Any]]:
    """The options (keyword parameters after the three shared ones), defaults and annotations."""
    signature = inspect.signature(builder)
    parameters = list(signature.parameters.values())
    if len(parameters) < 3:
        raise TypeError(
            f"model builder {_builder_name(builder)} must take "
            f"(in_chans, num_classes, input_size, ...)"
        )
    defaults: dict[str, Any] = {}
    annotations: dict[str, Any] = {}
    accepts_any = False
    for parameter in parameters[3:]:
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            accepts_any = True
        elif parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            continue
        elif parameter.default is inspect.Parameter.empty:
            raise TypeError(
                f"option {parameter.name!r} of {_builder_name(builder)} needs a default"
            )
        else:
            defaults[parameter.name] = parameter.default
            if parameter.annotation is not inspect.Parameter.empty:
                annotations[parameter.name] = _evaluated(builder, parameter.annotation)
    return defaults, accepts_any, annotations


def register_model(name: str, description: str) -> Callable[[Builder], Builder]:
    """Decorator that makes ``create_model(name, ...)`` call the decorated builder.

    The builder's keyword options and their defaults are read from its signature, so
    :func:`model_info` can show them and :func:`create_model` can reject misspelt ones.
    """

    def decorator(builder: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"a model named {name!r} is already registered")
        defaults, accepts_any, annotations = _builder_options(builder)
        _REGISTRY[name] = _Entry(name, description, builder, defaults, accepts_any, annotations)
        return builder

    return decorator


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(_REGISTRY)


def _entry(name: str) -> _Entry:
    if not isinstance(name, str) or name not in _REGISTRY:
        close = difflib.get_close_matches(str(name), list(_REGISTRY), n=1, cutoff=0.5)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise CnnlabError(
            f"unknown model {name!r}.{hint} Available models: {', '.join(list_models())}."
        )
    return _REGISTRY[name]


def _positive_int(value: Any, what: str, minimum: int) -> int:
    if isinstance(value, bool):
        raise CnnlabError(f"{what} must be a whole number >= {minimum}, got {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise CnnlabError(f"{what} must be a whole number >= {minimum}, got {value!r}") from None
    if number < minimum:
        raise CnnlabError(f"{what} must be >= {minimum}, got {number}")
    return number


def normalize_input_size(input_size: int | Sequence[int]) -> tuple[int, int]:
    """``28`` or ``(28, 28)`` -> ``(28, 28)``; anything else is a :class:`CnnlabError`."""
    if isinstance(input_size, (str, bytes)) or not hasattr(input_size, "__len__"):
        side = _positive_int(input_size, "input size", 1)
        return side, side
    input_size = list(input_size)  # also takes NumPy arrays and torch.Size
    if len(input_size) != 2:
        raise CnnlabError(
            f"input size must be one number or (height, width), got {list(input_size)!r}"
        )
    height = _positive_int(input_size[0], "input height", 1)
    width = _positive_int(input_size[1], "input width", 1)
    return height, width


def _build(
    entry: _Entry, in_chans: int, num_classes: int, size: tuple[int, int], options: dict[str, Any]
) -> ImageClassifier:
    """Build and run one zero image through the model, so a too-small input fails here."""
    model = entry.builder(in_chans, num_classes, size, **options)
    if not isinstance(model, ImageClassifier):
        raise TypeError(f"builder of {entry.name!r} returned {type(model).__name__}")
    logits = output_shape(model, (in_chans, *size))
    if logits != (num_classes,):
        raise TypeError(
            f"model {entry.name!r} gives logits of shape {(1, *logits)} for {num_classes} classes"
        )
    return model


def _smallest_side(
    entry: _Entry, in_chans: int, num_classes: int, options: dict[str, Any], start: int = 1
) -> int | None:
    """Smallest square side >= ``start`` that the model takes, by building it.

    Convolutions and poolings shrink each axis independently and never grow a larger input into
    a smaller output, so the model takes ``(h, w)`` exactly when ``min(h, w)`` is at least this
    side. Models at these sizes are tiny, so trying each side in turn is quick.
    """
    for side in range(max(start, 1), MAX_SEARCHED_SIZE + 1):
        try:
            _build(entry, in_chans, num_classes, (side, side), options)
        except InputTooSmallError:
            continue
        return side
    return None


def _check_options(entry: _Entry, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    unknown = [key for key in kwargs if key not in entry.defaults]  # in the order given
    if unknown and not entry.accepts_any_option:
        known = ", ".join(entry.defaults) or "none"
        raise CnnlabError(
            f"model {entry.name!r} has no option {', '.join(map(repr, unknown))}; "
            f"its options are: {known}"
        )
    options = {**entry.defaults, **kwargs}
    try:
        json.dumps(_jsonable(options))
    except TypeError as error:
        raise CnnlabError(
            f"options of model {entry.name!r} must be numbers, strings or lists ({error})"
        ) from None
    return options


def _jsonable(value: Any) -> Any:
    """Tuples become lists so the config compares equal after a JSON round trip."""
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    return value


def create_model(
    name: str,
    in_chans: int = 1,
    num_classes: int = 10,
    input_size: int | Sequence[int] = (28, 28),
    **kwargs: Any,
) -> ImageClassifier:
    """Build the registered model ``name`` for images of ``in_chans`` x ``input_size``.

    ``input_size`` is one side or ``(height, width)``. Extra keyword arguments are the model's
    options (see :func:`model_info`). The returned model is in training mode, with PyTorch's
    default initialization, and has ``cnnlab_config`` set to a JSON-serialisable dict from which
    :func:`model_from_config` rebuilds the same architecture.
    """
    entry = _entry(name)
    in_chans = _positive_int(in_chans, "number of input channels", 1)
    num_classes = _positive_int(num_classes, "number of classes", 2)
    size = normalize_input_size(input_size)
    options = _check_options(entry, kwargs)
    try:
        model = _build(entry, in_chans, num_classes, size, options)
    except InputTooSmallError as error:
        smallest = _smallest_side(entry, in_chans, num_classes, options, start=min(size) + 1)
        if smallest is None:
            raise
        raise CnnlabError(
            f"model {name!r} needs images of at least {smallest}x{smallest} pixels, got "
            f"{size[0]}x{size[1]}; resize the images (or pad them) or pick a model for smaller "
            f"inputs such as 'mlp'"
        ) from error
    model.cnnlab_config = {
        "name": name,
        "in_chans": in_chans,
        "num_classes": num_classes,
        "input_size": [size[0], size[1]],
        "kwargs": _jsonable(options),
    }
    return model


def model_from_config(config: Mapping[str, Any]) -> ImageClassifier:
    """Rebuild a model from its ``cnnlab_config`` (for instance one read back from a file)."""
    required = ("name", "in_chans", "num_classes", "input_size")
    missing = [key for key in required if key not in config]
    if missing:
        raise CnnlabError(f"model config lacks {', '.join(missing)}; was it saved by cnnlab?")
    extra = config.get("kwargs") or {}
    if not isinstance(extra, Mapping):
        raise CnnlabError(f"model config 'kwargs' must be a mapping, got {extra!r}")
    return create_model(
        config["name"],
        in_chans=config["in_chans"],
        num_classes=config["num_classes"],
        input_size=config["input_size"],
        **extra,
    )


def min_input_size(name: str, in_chans: int = 1, num_classes: int = 10, **kwargs: Any) -> int:
    """Smallest side ``s`` such that the model takes every ``(h, w)`` with ``min(h, w) >= s``."""
    entry = _entry(name)
    in_chans = _positive_int(in_chans, "number of input channels", 1)
    num_classes = _positive_int(num_classes, "number of classes", 2)
    options = _check_options(entry, kwargs)
    smallest = _smallest_side(entry, in_chans, num_classes, options)
    if smallest is None:
        raise CnnlabError(
            f"model {name!r} takes no input up to {MAX_SEARCHED_SIZE}x{MAX_SEARCHED_SIZE} "
            f"with options {options}"
        )
    return smallest


def model_info(name: str) -> dict[str, Any]:
    """Name, description, default options and smallest input side of a registered model."""
    entry = _entry(name)
    return {
        "name": entry.name,
        "description": entry.description,
        "kwargs": _jsonable(entry.defaults),
        "min_input_size": min_input_size(name),
    }

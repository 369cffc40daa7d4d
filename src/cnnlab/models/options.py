"""A model's options as the command line gives them: ``KEY=VALUE`` strings, typed and checked.

The registry knows each model's options, their defaults and their type annotations from the
builder's signature, so ``--model-option kernel=3`` needs no table of its own: the text is read
as the annotation says (``int``, ``float``, ``bool``, ``str``, a union such as ``int | str``, or
a sequence of numbers written ``256,128``), falling back on the default's type where a builder
gives no annotation. The builder then checks each value as it would from Python, so a value
that parses but that the model refuses (``padding=-1``) is caught here too, before any data is
read, in one line that names the ``--model-option`` and lists the model's options.
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Sequence
from typing import Any

from cnnlab.errors import CnnlabError
from cnnlab.models.registry import _check_options, _Entry, _entry
from cnnlab.models.trace import InputTooSmallError

#: The image a value is tried on. Checks of values come before any layer is built, so a value
#: that only fails for being too large for this image (``kernel=40``) is left to create_model,
#: which knows the real image size.
TRIAL_SIZE = (32, 32)

_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def format_option(value: Any) -> str:
    """A value written as ``--model-option`` takes it: ``6,16``, ``true``, ``auto``, ``0.25``."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(format_option(item) for item in value)
    return str(value)


def _choices(annotation: Any, default: Any) -> list[Any]:
    """The types a value may take, most specific first (so ``int | str`` tries int first)."""
    if annotation is None or isinstance(annotation, str):  # none given, or not evaluable
        annotation = type(default)
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        found = [kind for arg in typing.get_args(annotation) for kind in _choices(arg, None)]
    elif typing.get_origin(annotation) in (tuple, list, Sequence) or annotation in (tuple, list):
        args = [arg for arg in typing.get_args(annotation) if arg is not Ellipsis]
        element = args[0] if args else (type(default[0]) if default else int)
        found = [("sequence", element)]
    else:
        found = [annotation]
    order = (type(None), bool, int, float, "sequence", str)

    def rank(kind: Any) -> int:
        key = kind[0] if isinstance(kind, tuple) else kind
        return order.index(key) if key in order else len(order)

    return sorted(found, key=rank)


def _number(text: str, kind: type) -> Any:
    if kind is int:
        return int(text)
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text!r} is not a finite number")
    return number


def _convert(text: str, kind: Any) -> Any:
    """``text`` as ``kind``; ValueError when it is not one."""
    if kind is type(None):
        if text.lower() in ("none", ""):
            return None
        raise ValueError(f"{text!r} is not none")
    if kind is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ValueError(f"{text!r} is not true or false")
    if kind in (int, float):
        return _number(text, kind)
    if isinstance(kind, tuple):  # ("sequence", element type)
        element = kind[1] if kind[1] in (int, float) else int
        items = [item.strip() for item in text.split(",")] if text.strip() else []
        return tuple(_number(item, element) for item in items)
    if kind is str:
        return text
    raise ValueError(f"options of type {kind!r} cannot be given on the command line")


def _what(kind: Any) -> str:
    if isinstance(kind, tuple):
        return f"{'numbers' if kind[1] is float else 'whole numbers'} separated by commas"
    names = {type(None): "none", bool: "true or false", int: "a whole number", float: "a number"}
    return names.get(kind, str(kind))


def _typed(entry: _Entry, key: str, text: str) -> Any:
    kinds: list[Any] = [int, float, bool, str]  # what the text looks like, failing all else
    if key in entry.defaults:  # (a builder that takes **options may be given any key)
        kinds = _choices(entry.annotations.get(key), entry.defaults[key])
    for kind in kinds:
        try:
            return _convert(text, kind)
        except ValueError:
            continue
    raise ValueError(f"expected {' or '.join(_what(kind) for kind in kinds)}")


def _listing(entry: _Entry) -> str:
    options = ", ".join(f"{key}={format_option(value)}" for key, value in entry.defaults.items())
    return f"the options of {entry.name!r} (with their defaults) are: {options or 'none'}"


def parse_model_options(items: Sequence[str], name: str) -> dict[str, Any]:
    """``["kernel=3", "padding=2"]`` -> ``{"kernel": 3, "padding": 2}`` for model ``name``.

    Each item is ``KEY=VALUE`` (given once); the value is typed from the builder's annotation
    or default: ``int``, ``float``, ``bool`` (true/false, yes/no, on/off, 1/0), ``str``, or a
    tuple of numbers written ``256,128`` (an empty value is an empty tuple). Each value is then
    tried on the builder, so the model's own checks apply. Any problem is one
    :class:`~cnnlab.errors.CnnlabError` line naming ``--model-option KEY=VALUE`` and listing the
    model's options. The result goes to ``create_model(name, ..., **options)`` as it is.
    """
    entry = _entry(name)
    options: dict[str, Any] = {}
    for item in map(str, items):
        key, equals, text = (part.strip() for part in item.partition("="))
        try:
            if not equals or not key:
                raise CnnlabError("expected KEY=VALUE")
            if key not in entry.defaults and not entry.accepts_any_option:
                raise CnnlabError(f"model {name!r} has no option {key!r}")
            if key in options:
                raise CnnlabError(f"option {key!r} is given twice")
            value = _typed(entry, key, text)
            entry.builder(1, 2, TRIAL_SIZE, **{**entry.defaults, **options, key: value})
        except InputTooSmallError:
            pass  # the value is fine; whether the real images are large enough is checked later
        except (CnnlabError, ValueError, TypeError) as error:
            raise CnnlabError(f"--model-option {item}: {error}; {_listing(entry)}") from None
        options[key] = value
    _check_options(entry, options)
    return options

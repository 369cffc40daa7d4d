"""Where the display layer registers how cnnlab's objects are drawn, so they need not import it.

A dataset, a history or a model lives in a low layer (``data``, ``models``, ``train``) but is
drawn by the highest one (``inspect`` and ``notebook``, with matplotlib). The low classes
therefore only name what they want (``views.render("dataset.html", self)``), and the display
layer says, once and as plain strings, which function draws each name
(:func:`cnnlab.notebook.hooks.install`, run by ``import cnnlab``). The drawing module is imported
at the first call, never at registration, so ``import cnnlab`` (and ``cnnlab train``) stay as
fast as without any display code.
"""

from __future__ import annotations

import importlib

from cnnlab.errors import CnnlabError

#: view name -> ``"module:function"`` that draws it.
_RENDERERS: dict[str, str] = {}


def register(name: str, target: str) -> None:
    """Says that ``target`` (``"package.module:function"``) draws the view ``name``."""
    if ":" not in target:
        raise ValueError(f"renderer target must be 'module:function', not {target!r}")
    _RENDERERS[name] = target


def registered(name: str) -> bool:
    return name in _RENDERERS


def render(name: str, subject: object, **options: object) -> object:
    """What the renderer registered for ``name`` makes of ``subject`` (HTML text, a Figure)."""
    target = _RENDERERS.get(name)
    if target is None:
        raise CnnlabError(f"nothing draws {name!r}: import cnnlab (the package) to register it")
    module, function = target.split(":", 1)
    return getattr(importlib.import_module(module), function)(subject, **options)

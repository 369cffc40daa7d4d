"""Where an exported file goes: checked before the (seconds-long) export starts."""

from __future__ import annotations

from pathlib import Path

from cnnlab.errors import CnnlabError


def check_target(out: str | Path, overwrite: bool, suffix: str) -> Path:
    """A file path to write: not a folder, its folder present, no file there unless ``overwrite``.

    ``suffix`` (``.onnx``) is required so that a later ``cnnlab predict FILE`` recognises it.
    """
    out = Path(out)
    if out.suffix.lower() != suffix:
        raise CnnlabError(f"--out {out}: name the file *{suffix}, e.g. {out.stem}{suffix}")
    if out.is_dir():
        raise CnnlabError(f"--out {out}: is a folder; give a file name such as model{suffix}")
    if not out.parent.is_dir():
        raise CnnlabError(f"--out {out}: the folder {out.parent} does not exist; create it first")
    if out.exists() and not overwrite:
        raise CnnlabError(f"--out {out}: exists; choose another path or pass --overwrite")
    return out

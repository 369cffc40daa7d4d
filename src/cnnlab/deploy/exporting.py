"""``cnnlab export``: one entry point that writes a run's model in any export format.

An exported file goes BESIDE the run folder by default (``runs/lenet`` -> ``runs/lenet.onnx``),
never into it: a run folder is written as a unit, its files listed in its contract
(:mod:`cnnlab.runs.folder`), and ``--overwrite`` of a run would otherwise delete or refuse
a file it does not know.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from cnnlab.deploy.bioimageio import export_bioimageio, require_bioimageio
from cnnlab.deploy.onnx import export_onnx, require_onnx
from cnnlab.deploy.output import check_target
from cnnlab.deploy.torchscript import export_torchscript
from cnnlab.errors import CnnlabError
from cnnlab.export.saved import META_NAME, load
from cnnlab.runs.folder import (
    FINISHED,
    is_partial,
    is_run_folder,
    partial_of,
    quoted,
    target_of,
)


@dataclass(frozen=True)
class Format:
    """An export format: the file suffix it needs, its writer and its optional packages' check.

    ``write(model, out, *, overwrite, source, **options)`` writes the file; ``source`` is the
    run (or model) folder the model came from, or None for a model given in memory.
    """

    suffix: str
    write: Callable[..., Path]
    require: Callable[[], None] = lambda: None


#: The formats by the name ``--format`` takes.
FORMATS: dict[str, Format] = {
    "onnx": Format(".onnx", export_onnx, require_onnx),
    "torchscript": Format(".pt", export_torchscript),
    "bioimageio": Format(".zip", export_bioimageio, require_bioimageio),
}


def default_out(run: str | Path, format: str) -> Path:
    """Where a run's export goes unless told: a sibling of the folder, ``RUN.onnx``."""
    run = target_of(run)
    return run.parent / f"{run.name}{_format(format).suffix}"


def export_model(
    run_or_model: str | Path | nn.Module,
    format: str,
    out: str | Path | None = None,
    overwrite: bool = False,
    **options,
) -> Path:
    """Writes a finished run's model (or a model in memory) as ``format``; returns the file.

    ``out`` defaults to :func:`default_out` for a run and is required for a model in memory;
    an existing file is replaced only with ``overwrite``. ``options`` go to the format's
    writer: ``class_names`` and ``bit_depth`` for a model that was not loaded from a run, and
    those of bioimage.io (authors, license, ...). Everything that can be refused (format, run,
    output path, missing packages) is checked before the model is loaded and exported.
    """
    spec = _format(format)
    if isinstance(run_or_model, nn.Module):
        if out is None:
            raise CnnlabError(f"out: give the {spec.suffix} file to write the model to")
        model, source = run_or_model, None
    else:
        folder = _finished_folder(run_or_model)
        out = default_out(folder, format) if out is None else out
        model, source = None, str(folder.resolve())
    target = check_target(out, overwrite, spec.suffix)
    spec.require()
    if model is None:
        model = load(source)
    return spec.write(model, target, overwrite=overwrite, source=source, **options)


def _format(name: str) -> Format:
    if name not in FORMATS:
        raise CnnlabError(f"--format {name}: choose one of {', '.join(FORMATS)}")
    return FORMATS[name]


def _finished_folder(path: str | Path) -> Path:
    """The folder of a finished run (or of a saved model), or a one-line error saying why not."""
    given = Path(path)
    run = target_of(given)
    if is_partial(given) or (not run.exists() and is_run_folder(partial_of(run))):
        raise CnnlabError(
            f"{given}: the run is not finished; continue it with cnnlab train --resume "
            f"{quoted(run)}, then export it"
        )
    if not run.exists():
        raise CnnlabError(f"{given}: no such run folder")
    if not run.is_dir():
        raise CnnlabError(f"{given}: not a run folder; give the folder that cnnlab train wrote")
    if is_run_folder(run) and not (run / FINISHED).is_file():
        raise CnnlabError(
            f"{given}: the run is not finished (no {FINISHED}); continue it with cnnlab train "
            f"--resume {quoted(run)}, then export it"
        )
    if not (run / META_NAME).is_file():
        raise CnnlabError(f"{given}: no {META_NAME}; give a run folder that cnnlab train wrote")
    return run

"""bioimage.io model packages: a run's model for Fiji (deepImageJ), ilastik, QuPath and napari.

A package is one zip that bioimage.io's own library (``bioimageio.spec``, model format 0.5)
writes and ``bioimageio.core`` tests: ``rdf.yaml``; TorchScript and ONNX weights (made by
:mod:`cnnlab.deploy.torchscript` and :mod:`cnnlab.deploy.onnx`, so raw pixels in, softmax
probabilities out); one test image and cnnlab's probabilities for it (``.npy``); a sample image
(``.tif``); a cover with sample images and their predicted classes; and a README written from
the run's ``config.json`` and ``metrics.json``. The input is ``(batch, channel, y, x)`` float32
with the raw values of the source image, and its one preprocessing step is ``ensure_dtype``
float32, so that a consumer handing over the 8- or 16-bit image as it is gets it cast: the
networks standardize their input themselves. The output's channel axis is named by the classes.

Not included: ``pytorch_state_dict`` weights. They would need cnnlab importable in the
consumer's environment (its architecture is cnnlab's code) and a pickled state dict, which
cnnlab never writes; deepImageJ, ilastik and QuPath run TorchScript or ONNX anyway.

Offline. ``bioimageio.core.test_model`` always validates with ``perform_io_checks=True``
(whatever ``BIOIMAGEIO_PERFORM_IO_CHECKS`` says): it checks each file's SHA-256, reads the
README and the test tensors, and it would fetch every URL the package names (a HEAD request per
``cite`` URL) and look up an author's ``github_user`` on api.github.com. A cnnlab package names
no URL unless the user's ``--cite`` gives one, and no GitHub user, so its test needs no network:
the test suite checks that with every socket connection refused. Its cache
(``BIOIMAGEIO_CACHE_PATH``) is used for downloads only, so it stays untouched.

Versions. bioimageio.core 0.11.0 requires bioimageio.spec 0.5.12.0, whose serializers call
pydantic's handler in a way pydantic 2.14 (pydantic-core 2.50) refuses, so that neither a
package can be written nor one validated; :func:`require_bioimageio` detects it and names the
fix (pydantic below 2.14).
"""

from __future__ import annotations

import contextlib
import functools
import io
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import tifffile
import torch
from torch import nn

from cnnlab.deploy.bioimageio_docs import PackageFacts, cover_png, readme
from cnnlab.deploy.bioimageio_rdf import rdf_content
from cnnlab.deploy.network import describe
from cnnlab.deploy.onnx import onnx_model, require_onnx
from cnnlab.deploy.output import check_target
from cnnlab.deploy.torchscript import torchscript_bytes
from cnnlab.errors import CnnlabError
from cnnlab.evaluate import predict_proba
from cnnlab.evaluate.evaluate import TORCHSCRIPT_DEPRECATED
from cnnlab.files import read_json, write_bytes
from cnnlab.runs.reading import headline_subset, load_run_split
from cnnlab.version import __version__

INSTALL_HINT = "pip install 'cnnlab[bioimageio]'"
#: The license a package gets unless told: bioimage.io's own recommendation for models.
DEFAULT_LICENSE = "CC-BY-4.0"
#: Sample images on the cover, at most one per class first.
COVER_SAMPLES = 8


def require_bioimageio() -> None:
    """Fails with one line when bioimage.io's packages are missing or cannot work together."""
    require_onnx()
    for package in ("bioimageio.spec", "bioimageio.core"):
        try:
            __import__(package)
        except ImportError:
            raise CnnlabError(
                f"bioimage.io packages need {package}, which is not installed: {INSTALL_HINT}"
            ) from None
    _check_serializer()


@functools.cache
def _check_serializer() -> None:
    """Writes one weights description as bioimageio.spec does when it packages a model."""
    import pydantic
    from bioimageio.spec import __version__ as spec_version
    from bioimageio.spec.model.v0_5 import TorchscriptWeightsDescr, Version

    with tempfile.TemporaryDirectory() as folder:
        probe = Path(folder) / "probe.txt"
        probe.write_text("probe")
        try:
            weights = TorchscriptWeightsDescr(source=probe, pytorch_version=Version("2.0"))
            weights.model_dump(mode="json")
        except Exception as error:  # the library's own failure, whatever its type
            raise CnnlabError(
                f"bioimageio.spec {spec_version} cannot write files with pydantic "
                f"{pydantic.VERSION} ({str(error).splitlines()[0][:80]}...); install "
                "'pydantic<2.14' (or a bioimageio.spec that supports your pydantic)"
            ) from None


def export_bioimageio(
    model: nn.Module,
    out: str | Path,
    *,
    overwrite: bool = False,
    source: str | Path | None = None,
    authors: Sequence[str] = (),
    license: str | None = None,
    cite: Sequence[str] = (),
    name: str | None = None,
    tags: Sequence[str] = (),
    class_names: Sequence[str] | None = None,
    bit_depth: int | None = None,
) -> Path:
    """Writes a bioimage.io model package of a run's model at ``out`` (``*.zip``, atomically).

    ``source`` is the finished run folder the model was loaded from: its test images become
    the package's test tensor and cover, its ``config.json`` and ``metrics.json`` its README.
    ``authors`` (names, at least one: bioimage.io requires them), ``license`` (an SPDX id,
    :data:`DEFAULT_LICENSE` unless given), ``cite`` (``"TEXT|DOI"`` or ``"TEXT|URL"`` entries),
    ``name`` and extra ``tags`` fill the package's description. An existing file is replaced
    only with ``overwrite``.
    """
    out = check_target(out, overwrite, ".zip")
    data = bioimageio_bytes(
        model,
        source=source,
        authors=authors,
        license=license,
        cite=cite,
        name=name,
        tags=tags,
        class_names=class_names,
        bit_depth=bit_depth,
    )
    write_bytes(out, data)
    return out


def bioimageio_bytes(
    model: nn.Module,
    *,
    source: str | Path | None,
    authors: Sequence[str] = (),
    license: str | None = None,
    cite: Sequence[str] = (),
    name: str | None = None,
    tags: Sequence[str] = (),
    class_names: Sequence[str] | None = None,
    bit_depth: int | None = None,
) -> bytes:
    """The zipped package of :func:`export_bioimageio`, validated by bioimageio.spec."""
    require_bioimageio()
    authors = _authors(authors)
    cite_entries = [_cite_entry(entry) for entry in cite]
    _check_license(license)
    if source is None:
        raise CnnlabError(
            "source: a bioimage.io package needs the run folder the model came from (its test "
            "images, config.json and metrics.json); export a run folder"
        )
    run = Path(source)
    # The run's name only: a package is made to be shared, this machine's paths are not.
    exported = {"class_names": class_names, "bit_depth": bit_depth, "source": run.name}
    facts = describe(model, **exported)
    names = tuple(facts["class_names"])
    name = _name(name, facts["model"], names)
    config = read_json(run / "config.json", "run configuration")
    metrics = read_json(run / "metrics.json", "metrics file")
    images, subset = _sample_images(model, run, metrics)
    probabilities = predict_proba(model, images)
    package = PackageFacts(
        name=name,
        model=facts["model"],
        class_names=names,
        in_chans=facts["in_chans"],
        input_size=tuple(facts["input_size"]),
        bit_depth=facts["bit_depth"],
        mean=tuple(facts["normalization"]["mean"]),
        std=tuple(facts["normalization"]["std"]),
        authors=tuple(authors),
        license=license or DEFAULT_LICENSE,
        license_is_default=license is None,
        cite=tuple(f"{e['text']} ({e.get('doi') or e.get('url')})" for e in cite_entries),
        cnnlab_version=__version__,
        weights_sha256=facts["weights_sha256"],
        source_run=run.name,
    )
    proto = onnx_model(model, **exported)
    opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    test_input = images[:1].float().numpy()
    files = {
        "weights.pt": torchscript_bytes(model, **exported),
        "weights.onnx": proto.SerializeToString(),
        "test_input.npy": _npy(test_input),
        "test_output.npy": _npy(probabilities[:1].float().numpy()),
        "sample_input.tif": _sample_tif(images[0], facts["bit_depth"]),
        "sample_output.tif": _tif(probabilities[:1].float().numpy()),
        "cover.png": cover_png(
            images,
            [names[i] for i in probabilities.argmax(1).tolist()],
            probabilities.max(1).values.tolist(),
        ),
        "README.md": readme(package, config, metrics, subset).encode(),
    }
    rdf = rdf_content(package, facts, cite_entries, tags, opset, subset)
    return _package(rdf, files)


def _authors(authors: Sequence[str]) -> list[str]:
    names = [" ".join(str(author).split()) for author in authors]
    if not names or not all(names):
        raise CnnlabError(
            "--author: a bioimage.io package names its authors; pass --author 'Your Name' "
            "(repeat it for several)"
        )
    for author in names:
        if "/" in author:
            raise CnnlabError(f"--author {author!r}: bioimage.io refuses a '/' in a name")
    return names


def _check_license(license: str | None) -> None:
    """An SPDX id that bioimage.io accepts (its own list), checked before the slow export."""
    from bioimageio.spec.model.v0_5 import DeprecatedLicenseId, LicenseId

    if license is None:
        return
    for kind in (LicenseId, DeprecatedLicenseId):
        try:
            kind(license)
            return
        except ValueError:
            pass
    raise CnnlabError(
        f"--license {license!r}: not an SPDX license id that bioimage.io accepts; give one such "
        f"as {DEFAULT_LICENSE}, CC0-1.0, MIT or BSD-3-Clause"
    )


def _cite_entry(entry: str) -> dict:
    """``"TEXT|DOI"`` or ``"TEXT|URL"`` as a bioimage.io citation."""
    text, sep, reference = (part.strip() for part in str(entry).rpartition("|"))
    if not sep or not text or not reference:
        raise CnnlabError(
            f"--cite {entry!r}: give 'TEXT|DOI' or 'TEXT|URL', e.g. 'Smith et al. 2024|10.1000/xyz'"
        )
    # A DOI link is kept as a DOI: bioimage.io would fetch a URL when it tests the package.
    for prefix in ("https://doi.org/", "http://doi.org/", "https://dx.doi.org/", "doi:"):
        reference = reference.removeprefix(prefix)
    if reference.startswith(("http://", "https://")):
        return {"text": text, "url": reference}
    if not reference.startswith("10."):
        raise CnnlabError(f"--cite {entry!r}: {reference!r} is neither a DOI (10.x/y) nor a URL")
    return {"text": text, "doi": reference}


def _name(name: str | None, model: str, class_names: Sequence[str]) -> str:
    """The package name; bioimage.io allows letters, digits, spaces and ``_+-()`` only."""
    if name is None:
        name = f"cnnlab {model} classifier ({len(class_names)} classes)"
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+- ()")
    if not 5 <= len(name) <= 128 or not set(name) <= allowed:
        raise CnnlabError(
            f"--name {name!r}: use 5 to 128 letters, digits, spaces or _+-() (bioimage.io's rule)"
        )
    return name


def _sample_images(model: nn.Module, run: Path, metrics: dict) -> tuple[torch.Tensor, str]:
    """Up to :data:`COVER_SAMPLES` raw images of the run's headline subset, one per class
    first, and that subset's name (test, else valid, else train).

    The run's data are re-read from its config.json as the report does; the first image is the
    package's test input.
    """
    try:
        split = load_run_split(run, quiet=True)
    except CnnlabError as error:
        # The package needs real images of the run's data; without them, say so plainly.
        raise CnnlabError(
            f"--format bioimageio needs the images {run} was trained on, for the package's test "
            f"image and cover, and they cannot be read: {error}. Put the data back where the run "
            "found it, or export --format onnx or torchscript, which need only the model"
        ) from None
    subsets = dict(split.items())
    subset = headline_subset(metrics) if metrics else "train"
    if subset not in subsets:
        subset = "train"
    dataset = subsets[subset]
    if not len(dataset):
        raise CnnlabError(f"{run}: the run's {subset} set is empty; no test image to package")
    dataset = dataset.raw().to_channels(model.in_chans).resize(tuple(model.input_size))
    labels = dataset.labels
    firsts = [int((labels == c).nonzero()[0]) for c in labels.unique().tolist()]
    first = set(firsts)
    rest = [i for i in range(len(dataset)) if i not in first]
    chosen = (firsts + rest)[:COVER_SAMPLES]
    images = dataset.select(chosen).images
    images = torch.stack(list(images)) if isinstance(images, list) else images
    return images, subset


def _sample_tif(image: torch.Tensor, bit_depth: int) -> bytes:
    """One ``(C, H, W)`` image as the TIFF a microscope or camera would write: gray ``(H, W)``
    or RGB ``(H, W, 3)``, in uint8, uint16 or float32 as its bit depth says."""
    dtype = {8: np.uint8, 16: np.uint16}.get(bit_depth)
    array = image.float().numpy()
    array = array if dtype is None else np.rint(array).astype(dtype)
    buffer = io.BytesIO()
    if len(array) == 1:
        tifffile.imwrite(buffer, array[0], photometric="minisblack")
    else:
        tifffile.imwrite(buffer, np.moveaxis(array, 0, -1), photometric="rgb")
    return buffer.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _tif(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array)
    return buffer.getvalue()


def _package(rdf: dict, files: dict[str, bytes]) -> bytes:
    """Validates ``rdf`` against its files with bioimageio.spec and zips them as it does."""
    from bioimageio.spec import (
        InvalidDescr,
        ValidationContext,
        build_description,
        save_bioimageio_package_to_stream,
    )

    with tempfile.TemporaryDirectory(prefix="cnnlab-bioimageio-") as folder, _quiet():
        root = Path(folder)
        for file_name, data in files.items():
            (root / file_name).write_bytes(data)
        context = ValidationContext(root=root, file_name="rdf.yaml", perform_io_checks=True)
        descr = build_description(rdf, context=context)
        if isinstance(descr, InvalidDescr):
            raise CnnlabError(f"bioimage.io refused the package: {first_error(descr)}")
        buffer = io.BytesIO()
        save_bioimageio_package_to_stream(descr, output_stream=buffer)
    return buffer.getvalue()


def first_error(descr) -> str:
    """The first error of a bioimage.io validation summary, as one line."""
    for detail in descr.validation_summary.details:
        for error in detail.errors:
            location = ".".join(str(part) for part in error.loc)
            return f"{location}: {error.msg}" if location else error.msg
    return descr.validation_summary.status


def check_bioimageio(package: str | Path):
    """bioimageio.core's own test of a package: validation, then each weight format's run.

    Returns its ``ValidationSummary`` (``.status`` is ``"passed"`` or ``"failed"``; ``.details``
    one entry per check, named by weight format). The test reads nothing but the package.
    """
    require_bioimageio()
    from bioimageio.core import test_model

    package = Path(package)
    if not package.is_file():
        raise CnnlabError(f"{package}: no such bioimage.io package")
    with _quiet(), warnings.catch_warnings():
        # bioimageio.core loads the torchscript weights with torch.jit.load, which torch 2.13
        # deprecates; the notice is about the consumer's code, not the package.
        warnings.filterwarnings(
            "ignore", message=TORCHSCRIPT_DEPRECATED, category=DeprecationWarning
        )
        return test_model(package)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silences bioimageio's log (loguru) of its own progress; the summary keeps its findings."""
    from loguru import logger

    logger.disable("bioimageio")
    try:
        yield
    finally:
        logger.enable("bioimageio")

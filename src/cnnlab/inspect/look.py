"""One image through a trained model: every layer, the first filters, all kernels, saliency."""

from __future__ import annotations

import warnings
from pathlib import Path

from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.export.predict import prepare_images
from cnnlab.inspect.activations import plot_activations
from cnnlab.inspect.figures import check_pictures_free
from cnnlab.inspect.filters import plot_conv_kernels, plot_filters
from cnnlab.inspect.saliency import plot_saliency


def inspect_image(
    model: nn.Module, image_path: str | Path, out: str | Path, overwrite: bool = True
) -> list[Path]:
    """Writes the pictures of ``image_path`` going through ``model`` into the folder ``out``.

    The image is read and preprocessed exactly as :func:`cnnlab.predict` would (channels, size,
    bit depth checked). Pictures that make no sense for the model, such as the filters of an
    MLP, are skipped with a warning; the others are still drawn. Returns the files written.
    ``overwrite=False`` (``cnnlab inspect`` without ``--overwrite``) refuses a folder that
    holds one of this image's pictures already; the model's own (its filters and kernels) are
    drawn again for each image looked at in the same folder.
    """
    image_path, out = Path(image_path), Path(out)
    stem = image_path.stem
    names = [f"{stem} - {kind}.png" for kind in ("activations", "saliency")]
    check_pictures_free(out, names, overwrite)
    image = prepare_images(model, [image_path]).images[0]
    out.mkdir(parents=True, exist_ok=True)
    class_names = getattr(model, "class_names", None)
    written = [out / name for name in names]
    plot_activations(model, image, written[0], class_names=class_names)
    plot_saliency(model, image, written[1], class_names=class_names)
    for draw, name in ((plot_filters, "filters"), (plot_conv_kernels, "kernels")):
        path = out / f"model - {name}.png"
        try:
            draw(model, path)
        except CnnlabError as error:
            warnings.warn(str(error), stacklevel=2)
        else:
            written.append(path)
    return written

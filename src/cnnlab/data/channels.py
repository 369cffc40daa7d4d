"""Gray and RGB: the one place where an image changes its number of channels.

RGB becomes gray by the ITU-R 601 luma weights (0.299 R + 0.587 G + 0.114 B, as Pillow and
ImageJ use), computed in float64; integer images are rounded half to even and clipped back into
their own type, float images are cast back to theirs. A fourth (alpha) channel is dropped. Gray
becomes RGB by repeating the plane.

The file reader (``channels=``, ``--channels``), :meth:`ImageDataset.to_channels` and the inputs
of a saved model all convert here, image by image, so a model is given the very gray values at
prediction that it was trained on.
"""

from __future__ import annotations

import numpy as np
import torch

from cnnlab.errors import CnnlabError

#: ITU-R 601 luma weights of R, G and B.
LUMA = np.array([0.299, 0.587, 0.114])

_CHANNELS = {1: "1 channel (gray)", 2: "2 channels (gray and alpha)", 3: "3 channels (RGB)"}
_CHANNELS[4] = "4 channels (RGBA)"


def describe_channels(samples: int) -> str:
    """``samples`` as words: "1 channel (gray)", "4 channels (RGBA)"."""
    return _CHANNELS.get(samples, f"{samples} channels")


def rgb_to_gray(rgb: np.ndarray) -> np.ndarray:
    """One ``(3, H, W)`` image as a ``(1, H, W)`` gray image of the same dtype."""
    # A C-ordered float64 copy, so that every caller hands np.tensordot the same layout: its
    # BLAS kernel may round the last bit differently for another one.
    values = np.ascontiguousarray(rgb, dtype=np.float64)
    gray = np.tensordot(LUMA, values, axes=1)[np.newaxis]
    if rgb.dtype.kind == "f":
        return gray.astype(rgb.dtype)
    info = np.iinfo(rgb.dtype)
    return np.clip(np.rint(gray), info.min, info.max).astype(rgb.dtype)


def convert_array(image: np.ndarray, channels: int) -> np.ndarray:
    """One ``(C, H, W)`` image with 1 or 3 ``channels``, in its own dtype."""
    have = image.shape[0]
    if have == channels:
        return image
    if channels == 3 and have == 1:
        return np.repeat(image, 3, axis=0)
    if channels == 1 and have in (3, 4):
        return rgb_to_gray(image[:3])
    raise CnnlabError(f"cannot convert {describe_channels(have)} to {channels} channel(s)")


def convert_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """Images (``(..., C, H, W)``) with 1 or 3 ``channels``, keeping their dtype and device.

    Each image is converted on its own by :func:`convert_array`, exactly as the file reader
    converts it.
    """
    have = images.shape[-3]
    if have == channels:
        return images
    if channels == 3 and have == 1:
        return images.repeat_interleave(3, dim=-3)
    if not (channels == 1 and have in (3, 4)):
        raise CnnlabError(f"cannot convert {describe_channels(have)} to {channels} channel(s)")
    # NumPy has no bfloat16: such images are converted as float32 and cast back.
    source = images.detach().cpu()
    source = source.float() if source.dtype == torch.bfloat16 else source
    flat = source.reshape(-1, *source.shape[-3:]).numpy()
    if len(flat) == 0:
        return images[..., :1, :, :].clone()
    gray = np.stack([convert_array(image, 1) for image in flat])
    out = torch.from_numpy(gray).reshape(*images.shape[:-3], 1, *images.shape[-2:])
    return out.to(device=images.device, dtype=images.dtype)

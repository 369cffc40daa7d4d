"""Native kernels for the layers where PyTorch's CPU operators leave most of the machine idle.

:func:`conv_pool_relu` is convolution + bias + 2x2 max pooling + ReLU in one pass forward and
one backward (see ``convpool.cpp``), used by LeNet-style networks while they train on a CPU.
:func:`status` says whether this machine built them (:mod:`cnnlab.kernels.build`).
"""

from cnnlab.kernels.build import library, status
from cnnlab.kernels.convpool import conv_pool_relu

__all__ = ["conv_pool_relu", "library", "status"]

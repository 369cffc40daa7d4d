"""``python -m cnnlab.kernels``: builds this machine's kernels now and prints the status line."""

from cnnlab.kernels.build import status

print(status())

"""``python -m cnnlab``: the ``cnnlab`` command, as torchrun starts it (``torchrun -m cnnlab``)."""

import sys

try:
    from cnnlab.cli import main
except KeyboardInterrupt:  # Ctrl-C while PyTorch is still being imported
    sys.exit(130)

sys.exit(main())

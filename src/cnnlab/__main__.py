"""``python -m cnnlab``: the ``cnnlab`` command, as torchrun starts it (``torchrun -m cnnlab``)."""

import sys

from cnnlab.cli import main

sys.exit(main())

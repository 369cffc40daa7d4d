"""``python -m cnnlab.sweep INDEX``: one worker process of ``cnnlab sweep --jobs N``."""

import sys

from cnnlab.sweep.worker import main

sys.exit(main())

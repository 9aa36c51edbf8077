"""``python -m retro`` (and ``torchrun -m retro``): the command line."""

import sys

from retro.cli import main

sys.exit(main())

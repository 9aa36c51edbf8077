import sys

from retro.cli import main

sys.exit(main())

"""``python -m devtools.emulator``: run the emulator from the command line."""

import sys

from devtools.emulator.core import main

sys.exit(main())

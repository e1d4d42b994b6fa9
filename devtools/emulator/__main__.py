"""``python -m devtools.emulator``: run the emulator (options: ``--help``, see ``cli``)."""

import sys

from devtools.emulator.cli import main

if __name__ == "__main__":
    sys.exit(main())

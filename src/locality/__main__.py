"""``python -m locality``: the ``locality`` command."""

import sys

from locality.cli import main

if __name__ == "__main__":
    sys.exit(main())

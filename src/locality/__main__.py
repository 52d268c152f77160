import sys

from locality.cli import main

sys.exit(main())

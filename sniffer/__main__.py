"""`python -m sniffer` is the same as the `sniffer` console script."""

import sys

from sniffer.cli import main

sys.exit(main())

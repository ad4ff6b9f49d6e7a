"""Shim for ``scall-compare``: the command line lives in :mod:`scall_cli.compare` (``--help``).

The tables and plots are in :mod:`agents.report`.
"""

import sys

from scall_cli.compare import main

if __name__ == "__main__":
    sys.exit(main())

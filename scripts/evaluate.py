"""Shim for ``scall-evaluate``: the command line lives in :mod:`scall_cli.evaluate` (``--help``)."""

import sys

from scall_cli.evaluate import main

if __name__ == "__main__":
    sys.exit(main())

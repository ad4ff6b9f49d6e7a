"""Shim for ``scall-train``: the command line lives in :mod:`scall_cli.train` (``--help``)."""

import sys

from scall_cli.train import main

if __name__ == "__main__":
    sys.exit(main())

"""Shim for ``scall-ablation-table``: the command line lives in :mod:`scall_cli.ablation`."""

import sys

from scall_cli.ablation import main

if __name__ == "__main__":
    sys.exit(main())

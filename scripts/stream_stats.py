"""Shim for ``scall-stream-stats``: the command line lives in :mod:`scall_cli.stream_stats`.

Run with ``--help`` for the options.
"""

import sys

from scall_cli.stream_stats import main

if __name__ == "__main__":
    sys.exit(main())

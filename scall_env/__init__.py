"""scall_env: memory-budgeted embedding size search for streaming recommendation as a Gymnasium env.

Importing the package registers ``Scall-ML1M-v0``, ``Scall-ML1M-MF-v0``, ``Scall-ML100K-v0`` and
``Scall-Synthetic-v0``.

If torch is not imported yet, the import also defaults ``OMP_WAIT_POLICY`` to ``PASSIVE``: torch's
idle OpenMP threads then sleep instead of spinning, which keeps the many small tensor operations of
a search from slowing down many-fold when other processes share the cores (measured with
``benchmarks/bench_step.py --omp-wait-policy``). Set the variable yourself to override it.
"""

import os
import sys

if "torch" not in sys.modules:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from scall_env.env import ScallEnv  # noqa: E402
from scall_env.registration import ENV_KWARGS, register_envs  # noqa: E402

__version__ = "0.1.0"
__all__ = ["ENV_KWARGS", "ScallEnv", "register_envs"]

register_envs()

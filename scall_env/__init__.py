"""scall_env: memory-budgeted embedding size search for streaming recommendation as a Gymnasium env.

Importing the package registers ``Scall-ML1M-v0``, ``Scall-ML1M-MF-v0``, ``Scall-ML100K-v0`` and
``Scall-Synthetic-v0``.
"""

from scall_env.env import ScallEnv
from scall_env.registration import ENV_KWARGS, register_envs

__version__ = "0.1.0"
__all__ = ["ENV_KWARGS", "ScallEnv", "register_envs"]

register_envs()

"""scall_env: memory-budgeted embedding size search for streaming recommendation as a Gymnasium env."""

__version__ = "0.1.0"

"""Agents for the SCALL environments: SCALL's SAC, SB3 algorithms, baselines, the run harness."""

import scall_env  # noqa: F401  (first: registers the envs and sets the OpenMP default before torch)

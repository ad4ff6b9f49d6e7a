"""Command lines of the project, installed as console scripts (see ``[project.scripts]``).

* ``scall-train`` (:mod:`scall_cli.train`): train one agent online over a stream;
* ``scall-compare`` (:mod:`scall_cli.compare`): agents x seeds (x budgets), tables and plots;
* ``scall-stream-stats`` (:mod:`scall_cli.stream_stats`): per-segment counts of a stream.

Each module has ``build_parser()`` and ``main(argv=None) -> int`` (the exit status); the files in
``scripts/`` are shims that call the same ``main``.
"""

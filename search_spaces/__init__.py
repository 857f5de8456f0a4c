"""Built-in search spaces for `autosoft search` (list them with `autosoft show spaces`).

Each module is a space: a define-by-run function ``space(trial) -> dict`` that only
calls ``trial.suggest_*`` and returns a policy dict (JSON version 1), plus a
one-line ``DESCRIPTION``. Copy a file, edit it (drop an op, narrow a range) and
pass its path: ``autosoft search --space my_space.py`` or ``--space my_space.py+soft``.
"""

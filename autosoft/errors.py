"""The one exception type for input a user can fix.

The CLI prints its message as a single line and exits with status 2; the Python
API lets it propagate. Messages say what was wrong and what is allowed.
"""


class AutosoftError(ValueError):
    """Bad user input: a policy file, an op name, a flag, a missing data set."""

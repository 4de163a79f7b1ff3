"""The exception types whose message is meant for a person.

Anything raised as `SeqcoreError` is bad input or an unusable environment: the command-line
tasks print its message as one sentence and exit with status 2, never a traceback.
`ConfigError` is the part of it that a configuration's own checks decide (a task's config, a
tool's options): it is also a ValueError, as Python callers expect of a bad argument.
"""


class SeqcoreError(Exception):
    """A problem the user can fix; `str(error)` is one complete sentence."""


class ConfigError(SeqcoreError, ValueError):
    """A configuration refused at construction; `str(error)` names the flag and the value."""

"""The one exception type whose message is meant for a person.

Anything raised as `SeqcoreError` is bad input or an unusable environment: the command-line
tasks print its message as one sentence and exit with status 2, never a traceback.
"""


class SeqcoreError(Exception):
    """A problem the user can fix; `str(error)` is one complete sentence."""

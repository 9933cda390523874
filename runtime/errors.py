"""ModmtError: a failure the user can fix, whose message is one line that says what to do."""


class ModmtError(Exception):
    """A failure the user can fix. Its message is one line that says what to do."""

"""Errors the command line prints on one line: a user's mistake (exit 2), a failed peer rank (exit 3)."""


class UserError(ValueError):
    """Bad input from the user (scenario, option, file); the message names the field and what is allowed."""


class DistributedError(RuntimeError):
    """A collective failed or timed out (a peer rank died or hangs): one line, a non-zero exit."""

"""Errors the command line prints on one line: a user's mistake (exit 2), a failed peer rank (exit 3)."""


class UserError(ValueError):
    """Bad input from the user (scenario, option, file); the message names the field and what is allowed."""


def first_line(e: BaseException) -> str:
    """An exception's first line (or its type): what a one-line error message can quote."""
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


class DistributedError(RuntimeError):
    """A collective failed or timed out (a peer rank died or hangs): one line, a non-zero exit."""

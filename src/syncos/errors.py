"""Errors the command line prints on one line: a user's mistake (exit 2), a failed peer rank (exit 3)."""


class UserError(ValueError):
    """Bad input from the user (scenario, option, file); the message names the field and what is allowed."""


def first_line(e: BaseException) -> str:
    """An exception's first line (or its type): what a one-line error message can quote."""
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


def shown(value: object, limit: int = 60) -> str:
    """A value as an error message quotes it: its repr, cut short so the message stays one line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_TYPE_NAMES = {
    int: "an integer",
    float: "a number",
    str: "a string",
    bool: "true/false",
    dict: "a mapping",
    list: "a list",
}


def type_name(types: tuple[type, ...]) -> str:
    """What an error message says a value should be: 'an integer', 'a number', 'a string or ...'."""
    if {int, float} <= set(types):
        types = tuple(t for t in types if t is not int)  # an int is taken where a number is
    return " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in types if t is not type(None))


class DistributedError(RuntimeError):
    """A collective failed or timed out (a peer rank died or hangs): one line, a non-zero exit."""

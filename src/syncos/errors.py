"""The one exception type for a user's mistake: the command line prints it on one line, exit 2."""


class UserError(ValueError):
    """Bad input from the user (scenario, option, file); the message names the field and what is allowed."""

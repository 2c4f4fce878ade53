"""The one exception for bad user input; entry points print it and exit 1, or 130 on Ctrl-C (`exit_on_user_error`)."""
from captcha_break.command import exit_on_error


class UserError(Exception):
    """Bad input from the user (flags, dataset, model folder): the message says what and where."""


def exit_on_user_error(interrupted="interrupted"):
    """For entry points: a UserError inside becomes `error: <message>` on stderr and exit status 1; Ctrl-C becomes
    `error: <interrupted>` and exit status 130, not a traceback (captcha_break.command.exit_on_error)."""
    return exit_on_error(UserError, interrupted)

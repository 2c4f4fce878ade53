"""The one exception for bad user input; entry points print it and exit 1 (`exit_on_user_error`)."""
import contextlib


class UserError(Exception):
    """Bad input from the user (flags, dataset, model folder): the message says what and where."""


@contextlib.contextmanager
def exit_on_user_error():
    """For entry points: a UserError inside becomes `error: <message>` on stderr and exit status 1."""
    try:
        yield
    except UserError as e:
        raise SystemExit(f"error: {e}") from None

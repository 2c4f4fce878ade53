"""The one exception for bad user input; entry points print it and exit 1, or 130 on Ctrl-C (`exit_on_user_error`)."""
import contextlib
import sys


class UserError(Exception):
    """Bad input from the user (flags, dataset, model folder): the message says what and where."""


INTERRUPTED = 130  # the shell's status for a process ended by Ctrl-C (128 + SIGINT)


@contextlib.contextmanager
def exit_on_user_error(interrupted="interrupted"):
    """For entry points: a UserError inside becomes `error: <message>` on stderr and exit status 1; Ctrl-C becomes
    `error: <interrupted>` and exit status 130, not a traceback."""
    try:
        yield
    except UserError as e:
        raise SystemExit(f"error: {e}") from None
    except KeyboardInterrupt:
        print(f"error: {interrupted}", file=sys.stderr, flush=True)
        raise SystemExit(INTERRUPTED) from None

"""What the commands of captcha_break share (serve, label, benchmark): a command line whose bad argument is one
`error: ...` line and exit status 1, with the --model_dir every one of them reads, and their end on a ReaderError or
Ctrl-C (`exit_on_error`, trainer.errors' too).

    def main(argv=None):
        args = command.parser("label", "Pre-labels a folder ...").parse_args(argv)
        with command.exit_on_error():
            ...
"""
import argparse
import contextlib
import sys

from captcha_break.errors import ReaderError

INTERRUPTED = 130  # the shell's status for a process ended by Ctrl-C (128 + SIGINT)


@contextlib.contextmanager
def exit_on_error(errors=ReaderError, interrupted="interrupted"):
    """For commands: one of `errors` inside becomes `error: <message>` on stderr and exit status 1; Ctrl-C becomes
    `error: <interrupted>` and exit status 130, not a traceback. (trainer.errors.exit_on_user_error is this one.)"""
    try:
        yield
    except errors as e:
        raise SystemExit(f"error: {e}") from None
    except KeyboardInterrupt:
        print(f"error: {interrupted}", file=sys.stderr, flush=True)
        raise SystemExit(INTERRUPTED) from None


class _ArgumentParser(argparse.ArgumentParser):
    """A command line whose bad or missing argument is one `error: ...` line and exit status 1, as every command's
    bad input is (argparse's own: its usage and exit status 2)."""

    def error(self, message):
        raise SystemExit(f"error: {message} (see {self.prog} --help)")


def parser(module, description):
    """The argument parser of `python -m captcha_break.<module>`, holding its --model_dir already."""
    found = _ArgumentParser(prog=f"python -m captcha_break.{module}", description=description)
    found.add_argument("--model_dir", required=True,
                       help="Folder holding reader.onnx and reader.json (trainer.export --format=onnx).")
    return found

"""The console script of an absl command module, in one line (`python -m` runs the same function):

    run = command.console_script(main, define_flags)   # setup.py: "captcha-x=trainer.x:run"

    if __name__ == "__main__":
        run()
"""
from absl import app


def console_script(main, define_flags=None):
    """A function of no arguments that defines the module's flags (`define_flags`: modules that define them only
    when run, so that importing them defines none) and runs `main(argv)` under absl."""
    def run():
        if define_flags:
            define_flags()
        app.run(main)
    return run

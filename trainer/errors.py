"""The one exception for bad user input; entry points print it and exit 1."""


class UserError(Exception):
    """Bad input from the user (flags, dataset, model folder): the message says what and where."""

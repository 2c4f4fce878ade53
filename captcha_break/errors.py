"""The reader's errors, each message one line saying what is wrong and where, and reading a JSON file into them
(`json_object`, which trainer.spec uses for spec.json too)."""
import json


class ReaderError(Exception):
    """A model folder the reader cannot use (missing or damaged reader.onnx or reader.json)."""


class ImageError(ReaderError):
    """One image the reader cannot read: not an image, too large, not a file."""


class TooLargeError(ImageError):
    """An image over the reader's pixel or byte limit (found before its pixels are decoded)."""


def json_object(data, path, version, error, reads="this reader reads", hint=""):
    """The JSON object in `data` (the bytes of the file `path`) at format_version `version`; otherwise `error` (an
    exception class) with one line naming `path`, and `hint` after it, what to do: reader.json here, spec.json in the
    trainer."""
    try:
        found = json.loads(data.decode("utf-8"))
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError
        raise error(f"{path} is not valid UTF-8 JSON: {e}{hint}") from None
    if not isinstance(found, dict):
        raise error(f"{path} must hold a JSON object, got {type(found).__name__}")
    if found.get("format_version") != version:
        raise error(f"{path}: format_version {found.get('format_version')!r}, {reads} {version}")
    return found

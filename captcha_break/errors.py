"""The reader's errors: each message is one line saying what is wrong and where."""


class ReaderError(Exception):
    """A model folder the reader cannot use (missing or damaged reader.onnx or reader.json)."""


class ImageError(ReaderError):
    """One image the reader cannot read: not an image, too large, not a file."""


class TooLargeError(ImageError):
    """An image over the reader's pixel or byte limit (found before its pixels are decoded)."""

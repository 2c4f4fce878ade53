"""Reads captcha image files with a model_dir's exported SavedModel (needs nothing else from model_dir)."""
import io
import os
import re
import warnings

import tensorflow as tf
from PIL import Image

from trainer.errors import UserError
from trainer.rundir import SAVED_MODEL



def load_signature(model_dir):
    """The serving signature of model_dir/saved_model: images (tf.string [N]) -> {text, confidence}."""
    if not tf.io.gfile.exists(model_dir):
        raise UserError(f"--model_dir {model_dir} does not exist")
    path = os.path.join(model_dir, SAVED_MODEL)
    if not tf.saved_model.contains_saved_model(path):
        raise UserError(f"no SavedModel in {path}: train with trainer.main first")
    try:
        return tf.saved_model.load(path).signatures["serving_default"]
    except (ValueError, OSError, KeyError, tf.errors.OpError):
        raise UserError(f"cannot load the SavedModel in {path}: damaged, or not one trainer.main wrote; train the "
                        "run again (trainer.main --overwrite)") from None


def too_large(encoded):
    """Why the encoded image is too large to decode (over Pillow's pixel limit, as ingest refuses), or None. Pillow
    reads only the header: a 91 KB 1-bit PNG of 20000x20000 would take gigabytes to decode."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(encoded)) as image:
                width, height = image.size
    except Image.DecompressionBombError as e:  # over twice the limit: Pillow gives only the pixel count
        pixels = re.search(r"[0-9]+", str(e)).group()
        return f"the image has {pixels} pixels, over the limit of {Image.MAX_IMAGE_PIXELS}"
    except Exception:  # not an image Pillow knows: the SavedModel's decoder says
        return None
    if width * height > Image.MAX_IMAGE_PIXELS:
        return f"the image is {width}x{height}: {width * height} pixels, over the limit of {Image.MAX_IMAGE_PIXELS}"
    return None


def predict_files(signature, paths):
    """Yields (path, text, confidence, None) per image, or (path, None, None, error message) if it can't be read."""
    for path in paths:
        try:
            if not os.path.isfile(path):  # a folder, a FIFO (open would wait for a writer forever), a device
                problem = "not a regular file" if os.path.exists(path) else "No such file or directory"
            else:
                with open(path, "rb") as f:
                    encoded = f.read()
                problem = too_large(encoded)
            if problem:
                yield path, None, None, f"cannot read {path}: {problem}"
                continue
            out = signature(images=tf.constant([encoded]))
        except OSError as e:
            yield path, None, None, f"cannot read {path}: {e.strerror}"
        except tf.errors.InvalidArgumentError:
            yield path, None, None, f"cannot decode {path}: not a PNG, JPEG, GIF or BMP image"
        else:
            yield path, out["text"][0].numpy().decode(), float(out["confidence"][0]), None

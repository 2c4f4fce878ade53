"""Reads captcha image files with a model_dir's exported SavedModel (needs nothing else from model_dir)."""
import os

import tensorflow as tf

from trainer.errors import UserError

SAVED_MODEL = "saved_model"


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


def predict_files(signature, paths):
    """Yields (path, text, confidence, None) per image, or (path, None, None, error message) if it can't be read."""
    for path in paths:
        try:
            with open(path, "rb") as f:
                encoded = f.read()
            out = signature(images=tf.constant([encoded]))
        except OSError as e:
            yield path, None, None, f"cannot read {path}: {e.strerror}"
        except tf.errors.InvalidArgumentError:
            yield path, None, None, f"cannot decode {path}: not a PNG, JPEG, GIF or BMP image"
        else:
            yield path, out["text"][0].numpy().decode(), float(out["confidence"][0]), None

"""A model_dir as trainer.main writes it: its run's files, its config.json, and whether the run finished.

    best.keras  spec.json  config.json  log.csv  curves.png  tensorboard/  saved_model/
    backup/                                     while the run is unfinished (Keras BackupAndRestore)
    eval_SPLIT.json  eval_SPLIT_errors.png      written by trainer.evaluate
"""
import json
import os
import zipfile

import keras
import tensorflow as tf

from trainer import spec as spec_lib
from trainer.errors import UserError
from trainer.models import uint8_input

BEST_MODEL = "best.keras"
CONFIG_FILE = "config.json"
BACKUP_DIR = "backup"
RUN_FILES = (BEST_MODEL, spec_lib.SPEC_FILE, CONFIG_FILE, "log.csv", "curves.png", "tensorboard", "saved_model",
             BACKUP_DIR) + tuple(f"eval_{split}{end}" for split in spec_lib.SPLITS for end in (".json", "_errors.png"))


def read_config(model_dir):
    """model_dir's config.json (its run's TrainConfig) as a dict; UserError naming the file and the field if it
    cannot be read or lacks the model or decoder name."""
    path = os.path.join(model_dir, CONFIG_FILE)
    try:
        with tf.io.gfile.GFile(path, "rb") as f:
            config = json.loads(f.read().decode("utf-8"))
    except tf.errors.NotFoundError:
        raise UserError(f"{path} not found: {model_dir} holds no run of trainer.main") from None
    except tf.errors.OpError as e:
        raise UserError(f"cannot read {path}: {e.message}") from None
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError
        raise UserError(f"{path} is not valid JSON ({e}): train the run again (trainer.main --overwrite)") from None
    if not isinstance(config, dict):
        raise UserError(f"{path} must hold a JSON object, got {type(config).__name__}")
    for key in ("model", "decoder"):
        if key not in config:
            raise UserError(f"{path}: missing field {key}")
        if not isinstance(config[key], str):
            raise UserError(f"{path}: {key} must be a string, got {config[key]!r}")
    return config


def check_trained(model_dir, flag="--model_dir"):
    """Raises UserError unless model_dir (given as `flag`) holds a model trained by trainer.main."""
    if not tf.io.gfile.exists(model_dir):
        raise UserError(f"{flag} {model_dir} does not exist")
    if not tf.io.gfile.exists(os.path.join(model_dir, BEST_MODEL)):
        raise UserError(f"{flag} {model_dir} holds no trained model (no {BEST_MODEL}): train one there with "
                        "trainer.main")


def load_model(model_dir):
    """model_dir's best.keras, uncompiled, taking uint8 images (those saved before the trainer fed uint8 take float32
    in [0, 1]: they get the scaling in front, trainer.models.uint8_input); UserError if there is none or it cannot
    be read."""
    check_trained(model_dir)
    path = os.path.join(model_dir, BEST_MODEL)
    try:
        return uint8_input(keras.models.load_model(path, compile=False))
    except (ValueError, OSError, KeyError, zipfile.BadZipFile):
        raise UserError(f"cannot load {path}: not a readable Keras model file; train the run again "
                        "(trainer.main --overwrite)") from None


def is_finished(model_dir):
    """Whether model_dir holds a finished run: a best.keras and no backup/ left to resume from."""
    return tf.io.gfile.exists(os.path.join(model_dir, BEST_MODEL)) and not is_interrupted(model_dir)


def is_interrupted(model_dir):
    """Whether model_dir holds a run that was stopped before its end (BackupAndRestore's backup/ is still there)."""
    return tf.io.gfile.isdir(os.path.join(model_dir, BACKUP_DIR))


def clear(model_dir):
    """Deletes the files of model_dir's run (RUN_FILES); anything else in the folder stays."""
    for name in RUN_FILES:
        path = os.path.join(model_dir, name)
        if tf.io.gfile.isdir(path):
            tf.io.gfile.rmtree(path)
        elif tf.io.gfile.exists(path):
            tf.io.gfile.remove(path)

"""A model_dir as trainer.main writes it: its run's files, its config.json, whether the run finished, its lock.

    best.keras  spec.json  config.json  log.csv  curves.png  tensorboard/  saved_model/
    backup/                                     while the run is unfinished (Keras BackupAndRestore)
    eval_SPLIT.json  eval_SPLIT_errors.png      written by trainer.evaluate
    .trainer.lock                               held by the training that writes there (safeio.locks)

Every file is written through a temporary name renamed over it (`atomic_path`), so a full disk or a kill never
leaves a half-written one. A run is finished once saved_model/ (the last artefact) is written and backup/ is gone;
backup/ stays after training until then, marked TRAINING_ENDED, so a run whose export failed finishes on a rerun.
"""
import contextlib
import json
import os
import uuid
import zipfile

import keras
import tensorflow as tf
from absl import logging

from safeio import locks
from trainer import spec as spec_lib
from trainer.errors import UserError
from trainer.models import uint8_input

BEST_MODEL = "best.keras"
CONFIG_FILE = "config.json"
BACKUP_DIR = "backup"
SAVED_MODEL = "saved_model"
TRAINING_ENDED = "training_ended.json"  # in backup/: fit ended; what is left is the curves and the export
TEMPORARY_PREFIX = "incomplete-"  # atomic_path's temporary names: incomplete-<8 hex>-NAME
DERIVED_FILES = tuple(f"eval_{split}{end}" for split in spec_lib.SPLITS for end in (".json", "_errors.png"))
RUN_FILES = (BEST_MODEL, spec_lib.SPEC_FILE, CONFIG_FILE, "log.csv", "curves.png", "tensorboard", SAVED_MODEL,
             "reader.onnx", "reader.json", BACKUP_DIR) + DERIVED_FILES


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
    """Whether model_dir holds a finished run: a best.keras, its saved_model/, and no backup/ left to resume from."""
    return (tf.io.gfile.exists(os.path.join(model_dir, BEST_MODEL)) and is_exported(model_dir)
            and not is_interrupted(model_dir))


def is_exported(model_dir):
    return tf.io.gfile.exists(os.path.join(model_dir, SAVED_MODEL))


def training_ended(model_dir):
    """Whether the run's fit ended (backup/TRAINING_ENDED), so that only its curves and export are left to write."""
    return tf.io.gfile.exists(os.path.join(model_dir, BACKUP_DIR, TRAINING_ENDED))


def mark_training_ended(model_dir):
    write_atomic(os.path.join(model_dir, BACKUP_DIR, TRAINING_ENDED), json.dumps({"training_ended": True}))


def mark_finished(model_dir):
    """Deletes backup/, and trainer.evaluate's files written while the run was unfinished: run once every artefact
    is written."""
    for split in spec_lib.SPLITS:
        path = os.path.join(model_dir, f"eval_{split}.json")
        with contextlib.suppress(tf.errors.NotFoundError, ValueError, AttributeError):
            with tf.io.gfile.GFile(path) as f:
                unfinished = json.loads(f.read()).get("run") == "unfinished"
            if unfinished:
                for name in (f"eval_{split}.json", f"eval_{split}_errors.png"):
                    _remove(os.path.join(model_dir, name))
    tf.io.gfile.rmtree(os.path.join(model_dir, BACKUP_DIR))


def is_interrupted(model_dir):
    """Whether model_dir holds a run that was stopped before its end (BackupAndRestore's backup/ is still there)."""
    return tf.io.gfile.isdir(os.path.join(model_dir, BACKUP_DIR))


def clear(model_dir):
    """Deletes the files of model_dir's run (RUN_FILES); anything else in the folder stays."""
    for name in RUN_FILES:
        _remove(os.path.join(model_dir, name))


def drop_derived(model_dir):
    """Deletes trainer.evaluate's files (DERIVED_FILES): they describe a best.keras that was just replaced."""
    for name in DERIVED_FILES:
        _remove(os.path.join(model_dir, name))


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path` (incomplete-<8 hex>-NAME: the name's ending stays, as Keras wants) to
    write a file or a folder at; renamed over `path` when the block ends, deleted when it fails."""
    folder, name = os.path.split(path)
    temporary = os.path.join(folder, f"{TEMPORARY_PREFIX}{uuid.uuid4().hex[:8]}-{name}")
    try:
        yield temporary
        if tf.io.gfile.isdir(path):  # a folder cannot be renamed over another: move the old one aside first
            aside = os.path.join(folder, f"{TEMPORARY_PREFIX}{uuid.uuid4().hex[:8]}-{name}")
            tf.io.gfile.rename(path, aside)
            tf.io.gfile.rename(temporary, path)
            _remove(aside)
        else:
            tf.io.gfile.rename(temporary, path, overwrite=True)
    except BaseException:  # a full disk, a kill, Ctrl-C: leave no temporary behind
        with contextlib.suppress(Exception):
            _remove(temporary)
        raise


def write_atomic(path, data):
    """Writes `data` (str or bytes) to `path` through `atomic_path`."""
    with atomic_path(path) as temporary:
        with tf.io.gfile.GFile(temporary, "wb" if isinstance(data, bytes) else "w") as f:
            f.write(data)


def _remove(path):
    if tf.io.gfile.isdir(path):
        tf.io.gfile.rmtree(path)
    elif tf.io.gfile.exists(path):
        tf.io.gfile.remove(path)


def remove_temporaries(model_dir):
    """Deletes the temporary files and folders that a killed run left in model_dir and its backup/."""
    for folder in (model_dir, os.path.join(model_dir, BACKUP_DIR)):
        if tf.io.gfile.isdir(folder):
            for name in tf.io.gfile.listdir(folder):
                if name.startswith(TEMPORARY_PREFIX):
                    _remove(os.path.join(folder, name.rstrip("/")))


@contextlib.contextmanager
def locked(model_dir):
    """Creates model_dir and holds its lock for the block; UserError naming the holder if another training holds
    it. A remote model_dir (gs://...) cannot be locked: a warning, and on."""
    try:
        tf.io.gfile.makedirs(model_dir)
    except tf.errors.OpError as e:
        raise UserError(f"cannot create --model_dir {model_dir}: {e.message}") from None
    if "://" in model_dir:
        logging.warning("%s cannot be locked (not a local folder): make sure no other training writes there", model_dir)
        yield
        return
    try:
        lock = locks.take(model_dir, locks.RUN_LOCK)
    except locks.Busy as busy:
        raise UserError(f"--model_dir {model_dir} is in use by another training ({busy.who()} holds "
                        f"{locks.RUN_LOCK}); wait for it to end, or choose another --model_dir") from None
    except OSError as e:
        raise UserError(f"cannot lock --model_dir {model_dir}: {e}") from None
    with lock:
        yield

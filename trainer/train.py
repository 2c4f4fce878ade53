"""Trains a registry model on a dataset folder and writes everything needed to serve it into model_dir.

    python -m trainer.main --model=ctc --data_dir=data/synth --model_dir=runs/ctc --epochs=30

model_dir then holds best.keras (best val_captcha_acc), spec.json (the dataset's), config.json (this run's
TrainConfig), log.csv, curves.png, tensorboard/ and saved_model/ (see trainer.export).
"""
import dataclasses
import json
import math
import os

import keras
import tensorflow as tf
from absl import logging

from trainer import callbacks as callbacks_lib
from trainer import decoding, export, losses, plots
from trainer import data as data_lib
from trainer import spec as spec_lib
from trainer.errors import UserError
from trainer.models import MODELS

STRATEGIES = ("default", "mirrored")


@dataclasses.dataclass
class TrainConfig:
    """One training run; the flags of trainer.main map one to one onto these fields."""

    model: str
    data_dir: str
    model_dir: str
    batch_size: int = 32
    epochs: int = 30
    steps_per_epoch: int | None = None  # None: one pass over the train split
    learning_rate: float = 1e-3
    patience: int = 6  # epochs without a better val_captcha_acc before stopping
    lr_patience: int = 2  # epochs without a lower val_loss before dividing the learning rate by 10
    decoder: str = "greedy"
    mixed_precision: bool = False
    jit_compile: bool = False
    strategy: str = "default"
    verify_shards: bool = True
    cache: bool = False
    seed: int | None = None


def compile_model(model, charset, learning_rate, jit_compile=False):
    """Compiles `model` with Adam and the loss its output type needs (CTC or per-position cross-entropy)."""
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=losses.loss_for(model, charset),
                  jit_compile=jit_compile)
    return model


def train_and_evaluate(config, extra_callbacks=()):
    """Runs `config` (a TrainConfig) and returns the Keras History; `extra_callbacks` run after ours."""
    _check_config(config)
    spec = spec_lib.load_spec(config.data_dir)
    for split in ("train", "val"):
        if spec_lib.num_records(spec, split) == 0:
            raise UserError(f"split {split!r} of {config.data_dir} has no records; training needs train and val")
    if config.verify_shards:
        spec_lib.verify_shards(spec, config.data_dir, ("train", "val"))
    if config.seed is not None:
        keras.utils.set_random_seed(config.seed)

    strategy = tf.distribute.MirroredStrategy() if config.strategy == "mirrored" else tf.distribute.get_strategy()
    previous_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16" if config.mixed_precision else "float32")
    try:
        with strategy.scope():
            try:
                model = MODELS[config.model](spec_lib.image_shape(spec), len(spec["charset"]), spec["label_lengths"])
            except ValueError as e:
                raise UserError(str(e)) from e
            compile_model(model, spec["charset"], config.learning_rate, config.jit_compile)
    finally:
        keras.config.set_dtype_policy(previous_policy)
    _prepare_model_dir(config, spec)

    train = data_lib.make_dataset(spec, config.data_dir, "train", config.batch_size, training=True,
                                  cache=config.cache, seed=config.seed)
    val = data_lib.make_dataset(spec, config.data_dir, "val", config.batch_size, training=False, cache=config.cache)
    steps = config.steps_per_epoch or math.ceil(spec_lib.num_records(spec, "train") / config.batch_size)
    callbacks = callbacks_lib.standard_callbacks(
        config.model_dir, callbacks_lib.CaptchaMetrics(val, spec["charset"], config.decoder),
        config.patience, config.lr_patience)
    with spec_lib.naming_bad_shards(spec, config.data_dir, ("train", "val")):
        history = model.fit(train, epochs=config.epochs, steps_per_epoch=steps,
                            callbacks=callbacks + list(extra_callbacks), shuffle=False)

    plots.plot_history(os.path.join(config.model_dir, "log.csv"), os.path.join(config.model_dir, "curves.png"))
    best = keras.models.load_model(os.path.join(config.model_dir, "best.keras"), compile=False)
    export.export_saved_model(best, spec["charset"], os.path.join(config.model_dir, "saved_model"), config.decoder)
    logging.info("wrote %s", config.model_dir)
    return history


def _check_config(config):
    if config.model not in MODELS:
        raise UserError(f"unknown model {config.model!r}; expected one of {', '.join(MODELS)}")
    if config.strategy not in STRATEGIES:
        raise UserError(f"unknown strategy {config.strategy!r}; expected one of {', '.join(STRATEGIES)}")
    if config.decoder not in decoding.DECODERS:
        raise UserError(f"unknown decoder {config.decoder!r}; expected one of {', '.join(decoding.DECODERS)}")
    for name in ("batch_size", "epochs", "patience", "lr_patience"):
        if getattr(config, name) < 1:
            raise UserError(f"{name} must be at least 1, got {getattr(config, name)}")
    if config.steps_per_epoch is not None and config.steps_per_epoch < 1:
        raise UserError(f"steps_per_epoch must be at least 1, got {config.steps_per_epoch}")
    if config.learning_rate <= 0:
        raise UserError(f"learning_rate must be positive, got {config.learning_rate}")


def _prepare_model_dir(config, spec):
    """Creates model_dir with the dataset's spec.json and this config; refuses a folder of another task/model."""
    os.makedirs(config.model_dir, exist_ok=True)
    spec_path = os.path.join(config.model_dir, spec_lib.SPEC_FILE)
    config_path = os.path.join(config.model_dir, "config.json")
    if os.path.exists(spec_path):
        spec_lib.check_same_task(spec_lib.load_spec(config.model_dir), spec, config.model_dir)
    if os.path.exists(config_path):
        with open(config_path) as f:
            previous = json.load(f)["model"]
        if previous != config.model:
            raise UserError(f"{config.model_dir} holds a {previous!r} model, not {config.model!r}; "
                            "use another --model_dir")
    tf.io.gfile.copy(os.path.join(config.data_dir, spec_lib.SPEC_FILE), spec_path, overwrite=True)
    with open(config_path, "w") as f:
        json.dump(dataclasses.asdict(config), f, indent=2)

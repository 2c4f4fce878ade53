"""Trains a registry model on a dataset folder and writes everything needed to serve it into model_dir.

    python -m trainer.main --model=ctc --data_dir=data/synth --model_dir=runs/ctc --epochs=30

model_dir then holds best.keras (best val_captcha_acc), spec.json (the dataset's), config.json (this run's
TrainConfig), log.csv, curves.png, tensorboard/, saved_model/ (see trainer.export) and, where tf2onnx is installed,
reader.onnx and reader.json (trainer.onnx_export). With init_from, training
starts from that model_dir's best.keras (trainer.finetune).

Every Keras backend trains the same way (KERAS_BACKEND=tensorflow|jax|torch, the same tf.data input); the flags that
depend on one (FLAG_BACKENDS) are checked against it first, and the SavedModel is always exported under TensorFlow.

A model_dir holding an interrupted run (backup/) resumes it, if it is the same model on the same dataset; one
holding a finished run is refused unless overwrite, which first deletes its run files (trainer.rundir).
"""
import contextlib
import dataclasses
import functools
import json
import math
import os
import time

import keras
import tensorflow as tf
from absl import logging

from safeio import disk
from trainer import callbacks as callbacks_lib
from trainer import decoding, export, finetune, losses, onnx_export, plots, prepared, race, recipe, rundir
from trainer import data as data_lib
from trainer.errors import UserError
from trainer.models import MODELS, build_parts
from trainer.spec import SPEC_FILE, DatasetSpec

STRATEGIES = ("default", "mirrored")
LR_SCHEDULES = ("plateau", "cosine")
# Keras dtype policies: mixed_float16 for GPUs' fp16 tensor cores, mixed_bfloat16 for CPUs with AMX or AVX512-BF16
# (README: CPU recipe); either way variables, the softmax and the loss stay float32.
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
LEARNING_RATE = 1e-3
FINE_TUNE_LEARNING_RATE = 1e-4  # the default with init_from
# The Keras backends each backend-dependent flag works on; elsewhere it is refused, naming the backend. JAX always
# compiles its train step with XLA (--jit_compile changes nothing there); Keras' torch.compile of the train step
# recompiles step after step. --precision works on every backend.
FLAG_BACKENDS = {"strategy=mirrored": ("tensorflow",), "jit_compile": ("tensorflow", "jax")}


@dataclasses.dataclass
class TrainConfig:
    """One training run; the flags of trainer.main map one to one onto these fields."""

    model: str
    data_dir: str
    model_dir: str
    batch_size: int = 32
    epochs: int = 30
    steps_per_epoch: int | None = None  # None: one pass over the train split
    learning_rate: float | None = None  # None: LEARNING_RATE, or FINE_TUNE_LEARNING_RATE with init_from
    lr_schedule: str = "plateau"  # plateau: ReduceLROnPlateau; cosine: cosine decay over time_budget or all steps
    warmup: float = 0.0  # cosine only: fraction of training spent ramping the learning rate up from 0
    clipnorm: float | None = None  # clip each step's gradients to this global norm
    time_budget: float | None = None  # seconds of training, then stop (the best checkpoint is kept)
    patience: int = 6  # epochs without a better val_captcha_acc before stopping
    lr_patience: int = 2  # epochs without a lower val_loss before dividing the learning rate by 10
    decoder: str = "greedy"
    precision: str = "float32"  # a Keras dtype policy from PRECISIONS
    jit_compile: bool = False
    strategy: str = "default"
    verify_shards: bool = True
    cache: bool = False
    seed: int | None = None
    init_from: str | None = None  # a model_dir of the same architecture, charset and image shape to start from
    augment: bool = False  # random jitter of the training images (trainer.augment)
    colour_augment: bool = False  # random colour of the training images, no geometry (trainer.augment.colour)
    overwrite: bool = False  # start over in a model_dir holding a finished run, deleting its run files first
    input_height: int | None = None  # the model resizes images to this height first (trainer.models.build)
    # None for these three: --model=auto's choice (ink, jitter) or the init run's (ink, crop), else False.
    crop: bool | None = None  # scale each image's text box to the input size (trainer.models.input_layers.TextCrop)
    ink: bool | None = None  # read one channel of ink, not the colours (trainer.models.input_layers.Ink)
    jitter: bool | None = None  # a random affine map of each training image inside the model (input_layers.Jitter)
    train_examples: int | None = None  # train on the train split's first N records only (None: all of them)


def learning_rate(config):
    """The initial learning rate: the one given, else the default for training or fine-tuning."""
    if config.learning_rate is not None:
        return config.learning_rate
    return FINE_TUNE_LEARNING_RATE if config.init_from else LEARNING_RATE


def compile_model(model, charset, learning_rate, jit_compile=False, clipnorm=None):
    """Compiles `model` with Adam (gradients clipped to global norm `clipnorm` if given) and the loss its output
    type needs (CTC or per-position cross-entropy)."""
    model.compile(optimizer=keras.optimizers.Adam(learning_rate, global_clipnorm=clipnorm),
                  loss=losses.loss_for(model, charset),
                  jit_compile=jit_compile or keras.backend.backend() == "jax")  # uncompiled JAX runs op by op
    return model


def build_model(config, spec):
    """config.model for `spec`, compiled under config's strategy and dtype policy, with init_from's weights if set."""
    return build_models(config, spec)[1]


def build_models(config, spec, prepared_inputs=False):
    """(reader, trained): config.model for `spec` (the model best.keras holds, uncompiled) and the compiled model that
    fit trains, under config's strategy and dtype policy, with init_from's weights if set: the reader itself, or with
    `prepared_inputs` its twin that reads trainer.prepared's images (the same weights)."""
    weights = finetune.init_weights(config.init_from, config.model, spec) if config.init_from else None
    strategy = mirrored_strategy() if config.strategy == "mirrored" else None  # TensorFlow only
    previous_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy(config.precision)
    try:
        with strategy.scope() if strategy else contextlib.nullcontext():
            try:
                reader, twin = build_parts(config.model, spec.image_shape, len(spec.charset), spec.label_lengths,
                                           config.input_height, config.ink, config.jitter, config.crop)
            except ValueError as e:
                raise UserError(str(e)) from e
            if weights is not None:
                finetune.set_weights(reader, weights, config.init_from)
            trained = twin if prepared_inputs else reader
            return reader, compile_model(trained, spec.charset, learning_rate(config), config.jit_compile,
                                         config.clipnorm)
    finally:
        keras.config.set_dtype_policy(previous_policy)


@functools.cache
def mirrored_strategy():
    """The process's one MirroredStrategy: a second one starts its collective keys where the first did, so models
    trained one after another in a process (experiments.sweep, tests) would mix their gradient all-reduces."""
    return tf.distribute.MirroredStrategy()


def train_and_evaluate(config, extra_callbacks=()):
    """Runs `config` (a TrainConfig) and returns the Keras History; `extra_callbacks` run after ours.

    Holds model_dir's lock (a second training there is refused) and a reader's share of the dataset's (a render
    refuses to overwrite it meanwhile). A run whose training ended but whose export did not (a full disk) only writes
    what it lacks, and returns an empty History. A full disk is a UserError: the rerun resumes.
    """
    check_config(config)
    spec = DatasetSpec.load(config.data_dir)
    given, config = config, recipe.resolve(config, spec)
    candidates = recipe.race_candidates(given, config, spec)
    if candidates and rundir.is_finished(config.model_dir):
        check_model_dir(config, spec)  # refuses a finished run (without --overwrite) before any race is run
    trains = config.overwrite or not rundir.training_ended(config.model_dir)
    if candidates and trains and prepared.applies(config):  # one preparation for all the readers, out of the budget
        with data_lib.reading(config.data_dir):
            config = prepared_arrays(config, spec)[0]
    if candidates:  # each race run counts its steps in extra_callbacks too (experiments.report's figures)
        config = race.run(config, candidates, functools.partial(train_and_evaluate, extra_callbacks=extra_callbacks))
    if config.init_from:
        config = finetune.inherit(config)
    config = dataclasses.replace(config, ink=bool(config.ink), jitter=bool(config.jitter), crop=bool(config.crop))
    for split in ("train", "val"):
        if spec.num_records(split) == 0:
            raise UserError(f"split {split!r} of {config.data_dir} has no records; training needs train and val")
    with data_lib.reading(config.data_dir):
        check_model_dir(config, spec)
        if config.verify_shards:
            spec.verify_shards(("train", "val"))
        ended = rundir.training_ended(config.model_dir) and not config.overwrite
        if not ended:
            if config.seed is not None:
                keras.utils.set_random_seed(config.seed)
            config, inputs = training_inputs(config, spec)
            reader, model = build_models(config, spec, prepared.applies(config))
        with rundir.locked(config.model_dir), naming_a_full_disk(config.model_dir):
            if ended:
                print(f"{config.model_dir}: training had ended; writing its curves and SavedModel", flush=True)
                history = keras.callbacks.History()
                history.epoch, history.history = [], {}
            else:
                history = fit(model, *inputs, config, spec, extra_callbacks, reader)
                rundir.mark_training_ended(config.model_dir)
            plots.plot_history(os.path.join(config.model_dir, "log.csv"),
                               os.path.join(config.model_dir, "curves.png"))
            export.export_under_tensorflow(config.model_dir)
            if keras.backend.backend() == "tensorflow":  # elsewhere: python -m trainer.export --format=onnx
                onnx_export.export_if_available(config.model_dir)
            rundir.mark_finished(config.model_dir)  # the run is finished: every artefact is whole
    logging.info("wrote %s", config.model_dir)
    return history


def training_inputs(config, spec):
    """(config, (train, val)): the tf.data inputs of `config`, trainer.prepared's where it applies (prepared_arrays),
    and `config` as prepared_arrays leaves it."""
    if not prepared.applies(config):
        return config, (data_lib.make_dataset(spec, "train", config.batch_size, training=True, cache=config.cache,
                                              seed=config.seed, augment=config.augment,
                                              colour_augment=config.colour_augment, limit=config.train_examples),
                        data_lib.make_dataset(spec, "val", config.batch_size, training=False, cache=config.cache))
    config, (train, val) = prepared_arrays(config, spec)
    return config, (prepared.make_dataset(train, config.batch_size, training=True, seed=config.seed),
                    prepared.make_dataset(val, config.batch_size, training=False))


def prepared_arrays(config, spec):
    """(config, (train, val)): trainer.prepared's arrays of the train and val splits for `config`, and `config` with
    the seconds their preparation took taken from its time budget."""
    started = time.monotonic()
    with data_lib.naming_bad_shards(spec, ("train", "val")):
        train, val = (prepared.arrays(spec, split, config.input_height, bool(config.ink), limit)
                      for split, limit in (("train", config.train_examples), ("val", None)))
    spent = time.monotonic() - started
    logging.info("prepared %d train and %d val images once (crop%s) in %.1f s", len(train[0]), len(val[0]),
                 " and ink" if config.ink else "", spent)
    if config.time_budget:
        config = dataclasses.replace(config, time_budget=max(config.time_budget - spent, 1.0))
    return config, (train, val)


def fit(model, train, val, config, spec, extra_callbacks=(), reader=None):
    """Writes model_dir's first files and fits `model` on the `train` and `val` datasets, from model_dir's backup/
    if there is one; returns the History. best.keras holds `reader` (a model sharing `model`'s weights: the one that
    reads stored images where `model` reads prepared ones), else `model`."""
    prepare_model_dir(config, spec)  # the first write, after every check
    steps = config.steps_per_epoch or math.ceil(train_records(config, spec) / config.batch_size)
    budget = (callbacks_lib.TimeBudget(config.time_budget, os.path.join(config.model_dir, rundir.BACKUP_DIR))
              if config.time_budget else None)
    schedule = (callbacks_lib.CosineSchedule(learning_rate(config), config.epochs * steps, budget, config.warmup)
                if config.lr_schedule == "cosine" else None)
    callbacks = callbacks_lib.standard_callbacks(
        config.model_dir, callbacks_lib.CaptchaMetrics(
            val, spec.charset, config.decoder, os.path.join(config.model_dir, "tensorboard", "validation")),
        config.patience, config.lr_patience, schedule, reader) + ([budget] if budget else [])
    print(start_line(config, spec, model), flush=True)
    with data_lib.naming_bad_shards(spec, ("train", "val")):
        return model.fit(train, epochs=config.epochs, steps_per_epoch=steps,
                         callbacks=callbacks + list(extra_callbacks), shuffle=False)


@contextlib.contextmanager
def naming_a_full_disk(model_dir):
    """Turns a full disk met inside into a one-line UserError: every file of the run is written whole or not at all,
    so running the same command again, with room, resumes from the last complete backup."""
    try:
        yield
    except Exception as e:
        if not disk.is_full(e):
            raise
        raise UserError(f"no space left on the disk of --model_dir {model_dir} while writing the run's files: free "
                        "space, then run the same command again to resume from its last complete backup") from None


def start_line(config, spec, model):
    """The line trainer.main prints before the first epoch: dataset, model, parameters, backend and device, run
    folder."""
    counts = f"{train_records(config, spec)} train, {spec.num_records('val')} val"
    return (f"training {model.name} ({model.count_params():,} parameters) on {config.data_dir} ({counts}) with "
            f"{keras.backend.backend()} on {device_name(config.strategy)}, {config.precision}, into {config.model_dir}")


def train_records(config, spec):
    """How many train records the run reads: the split's, or config.train_examples where that is fewer."""
    return min(spec.num_records("train"), config.train_examples or spec.num_records("train"))


def device_name(strategy="default"):
    """What the backend trains on: "cpu", "gpu (NVIDIA H100 80GB HBM3)", "2 replicas (mirrored)", ..."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        if strategy == "mirrored":
            return f"{mirrored_strategy().num_replicas_in_sync} replicas (mirrored)"
        gpus = tf.config.list_physical_devices("GPU")
        return f"gpu ({tf.config.experimental.get_device_details(gpus[0]).get('device_name')})" if gpus else "cpu"
    if backend == "jax":
        import jax  # only under its backend, like torch below
        device = jax.devices()[0]
        return "cpu" if device.platform == "cpu" else f"{device.platform} ({device.device_kind})"
    import torch
    return f"cuda ({torch.cuda.get_device_name()})" if torch.cuda.is_available() else "cpu"


def check_config(config):
    """Raises UserError naming the first invalid field of a TrainConfig."""
    for name, choices in (("model", (*MODELS, recipe.AUTO)), ("strategy", STRATEGIES), ("precision", PRECISIONS),
                          ("decoder", decoding.DECODERS), ("lr_schedule", LR_SCHEDULES)):
        if getattr(config, name) not in choices:
            raise UserError(f"unknown {name} {getattr(config, name)!r}; expected one of {', '.join(choices)}")
    for name in ("batch_size", "epochs", "patience", "lr_patience"):
        if getattr(config, name) < 1:
            raise UserError(f"{name} must be at least 1, got {getattr(config, name)}")
    if config.input_height is not None and config.input_height < 8:
        raise UserError(f"input_height must be at least 8 pixels, got {config.input_height}")
    if config.train_examples is not None and config.train_examples < 1:
        raise UserError(f"train_examples must be at least 1, got {config.train_examples}")
    if config.steps_per_epoch is not None and config.steps_per_epoch < 1:
        raise UserError(f"steps_per_epoch must be at least 1, got {config.steps_per_epoch}")
    if config.learning_rate is not None and config.learning_rate <= 0:
        raise UserError(f"learning_rate must be positive, got {config.learning_rate}")
    if not 0 <= config.warmup < 1:
        raise UserError(f"warmup must be a fraction in [0, 1), got {config.warmup}")
    if config.warmup and config.lr_schedule != "cosine":
        raise UserError("--warmup needs --lr_schedule=cosine")
    if config.clipnorm is not None and config.clipnorm <= 0:
        raise UserError(f"clipnorm must be positive, got {config.clipnorm}")
    if config.time_budget is not None and config.time_budget <= 0:
        raise UserError(f"time_budget must be positive seconds, got {config.time_budget}")
    backend = keras.backend.backend()
    for flag, used in (("strategy=mirrored", config.strategy == "mirrored"), ("jit_compile", config.jit_compile)):
        if used and backend not in FLAG_BACKENDS[flag]:
            raise UserError(f"--{flag} does not work on the {backend} Keras backend; use KERAS_BACKEND="
                            f"{' or '.join(FLAG_BACKENDS[flag])}, or leave the flag out")
    if config.init_from and os.path.realpath(config.init_from) == os.path.realpath(config.model_dir):
        raise UserError("--init_from and --model_dir must differ: fine-tuning writes a new model_dir")


def check_model_dir(config, spec):
    """Raises UserError unless the run may write into config.model_dir: a folder without a finished run, one with
    overwrite, or one holding an interrupted run (backup/) of the same model on the same dataset, which it resumes.
    Writes nothing."""
    model_dir = config.model_dir
    if tf.io.gfile.exists(model_dir) and not tf.io.gfile.isdir(model_dir):
        raise UserError(f"--model_dir {model_dir} is not a folder")
    if os.path.realpath(config.data_dir) == os.path.realpath(model_dir):
        raise UserError("--model_dir and --data_dir must differ: the run's files would mix with the dataset's")
    if config.overwrite:
        return
    if rundir.is_finished(model_dir):
        raise UserError(f"--model_dir {model_dir} holds a finished run: pass --overwrite to train it again from "
                        f"scratch, --init_from={model_dir} with a new --model_dir to continue training from it, or "
                        "another --model_dir")
    if not rundir.is_interrupted(model_dir):
        if tf.io.gfile.exists(os.path.join(model_dir, rundir.BEST_MODEL)):
            raise UserError(f"--model_dir {model_dir} holds a best.keras but neither a backup/ to resume from nor a "
                            f"SavedModel: finish it with python -m trainer.export --model_dir={model_dir}, pass "
                            "--overwrite to train it again from scratch, or use another --model_dir")
        return  # new, or stopped before its first epoch ended: nothing to keep
    previous = rundir.read_config(model_dir)
    if previous["model"] != config.model:
        raise UserError(f"--model_dir {model_dir} holds an interrupted {previous['model']!r} run, not "
                        f"{config.model!r}: resume it with --model={previous['model']}, pass --overwrite to start "
                        "over there, or use another --model_dir")
    if previous.get("input_height") != config.input_height:
        raise UserError(f"--model_dir {model_dir} holds an interrupted run at --input_height="
                        f"{previous.get('input_height')}, not {config.input_height}: resume it with that height, "
                        "pass --overwrite to start over there, or use another --model_dir")
    for name in ("ink", "crop"):  # what the weights learnt to read
        previous_value = previous.get(name, False)
        if previous_value != getattr(config, name):
            flag = f"--{'' if previous_value else 'no'}{name}"
            raise UserError(f"--model_dir {model_dir} holds an interrupted run with {flag}: resume it with {flag}, "
                            "pass --overwrite to start over there, or use another --model_dir")
    if previous.get("train_examples") != config.train_examples:
        raise UserError(f"--model_dir {model_dir} holds an interrupted run on --train_examples="
                        f"{previous.get('train_examples')}, not {config.train_examples}: resume it with that number, "
                        "pass --overwrite to start over there, or use another --model_dir")
    difference = DatasetSpec.load(model_dir).difference(spec)
    if difference:
        raise UserError(f"--model_dir {model_dir} holds an interrupted run on another dataset ({difference}): "
                        f"resume it with --data_dir={previous.get('data_dir')}, pass --overwrite to start over "
                        "there, or use another --model_dir")


def prepare_model_dir(config, spec):
    """Writes the dataset's spec.json and this config.json into model_dir (with overwrite, after deleting its run
    files); run after check_model_dir, under rundir.locked (which creates model_dir)."""
    if config.overwrite:
        rundir.clear(config.model_dir)
    rundir.remove_temporaries(config.model_dir)  # of a killed run
    with rundir.atomic_path(os.path.join(config.model_dir, SPEC_FILE)) as temporary:
        tf.io.gfile.copy(spec.path, temporary)
    rundir.write_atomic(os.path.join(config.model_dir, rundir.CONFIG_FILE),
                        json.dumps(dict(dataclasses.asdict(config), learning_rate=learning_rate(config)), indent=2))

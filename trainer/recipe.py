"""`--model=auto`: training settings chosen from the dataset's spec.json and the time budget.

    python -m trainer.main --model=auto --data_dir=data/real --model_dir=runs/real --time_budget=1200

The choice (docs/real-captchas.md says how each was measured on real captchas): the `attn_small` reader (one
attention and softmax per character position: no CTC blank phase, no collapsed repeats) when every label has one
length, else the `ctc_small` reader (CTC), at an input height of INPUT_HEIGHT pixels (the width keeps the images'
aspect ratio), batches of BATCH_SIZE, Adam at PEAK_LEARNING_RATE with a linear warm-up and a cosine decay over the
time budget (or over enough steps to leave CTC's blank phase far behind when there is none), no augmentation
(trainer.augment's jitter helped one real set and stalled another: docs/real-captchas.md), decoded images cached in
memory when they fit, and validation every 100 to 200 steps (an epoch), so that the best checkpoint is picked often.
Any setting given on the command line (anything but its default) is kept. With --init_from, the init run's
model and input height are kept and the peak learning rate is FINE_TUNE_PEAK_LEARNING_RATE.
"""
import dataclasses
import math

from absl import logging

from trainer import finetune
from trainer.models import input_size

AUTO = "auto"
MODEL = "ctc_small"  # labels of several lengths
ONE_LENGTH_MODEL = "attn_small"  # every label of one length
INPUT_HEIGHT = 32
BATCH_SIZE = 32
PEAK_LEARNING_RATE = 3e-3
FINE_TUNE_PEAK_LEARNING_RATE = 1e-3  # with --init_from: the weights have left the blank phase already
WARMUP = 0.05
CLIPNORM = 5.0
MIN_STEPS = 4000  # without a time budget: at least this many steps (small sets leave the blank phase by ~500)
MIN_EPOCHS = 30  # ... and at least this many passes over a large train split
MIN_STEPS_PER_EPOCH, MAX_STEPS_PER_EPOCH = 100, 200  # validate (and maybe checkpoint) every 100 to 200 steps
CACHE_LIMIT_BYTES = 4e9  # decoded uint8 images kept in memory up to this size
UNLIMITED = 1_000_000  # epochs and patience when the time budget ends training


def choose(spec, time_budget=None, fine_tune=False):
    """The settings of `--model=auto` for a dataset spec: {TrainConfig field: value}."""
    train_records = spec.num_records("train")
    one_pass = max(1, math.ceil(train_records / BATCH_SIZE))
    steps_per_epoch = min(max(one_pass, MIN_STEPS_PER_EPOCH), MAX_STEPS_PER_EPOCH)
    if time_budget:
        epochs = UNLIMITED
    else:
        epochs = max(math.ceil(MIN_STEPS / steps_per_epoch), math.ceil(MIN_EPOCHS * one_pass / steps_per_epoch))
    height, width, channels = spec.image_shape
    cached_bytes = sum(spec.num_records(s) for s in ("train", "val")) * height * width * channels
    model = ONE_LENGTH_MODEL if len(spec.label_lengths) == 1 else MODEL
    return {"model": model, "input_height": INPUT_HEIGHT, "batch_size": BATCH_SIZE,
            "learning_rate": FINE_TUNE_PEAK_LEARNING_RATE if fine_tune else PEAK_LEARNING_RATE, "lr_schedule": "cosine", "warmup": WARMUP, "clipnorm": CLIPNORM,
            "augment": False, "cache": cached_bytes <= CACHE_LIMIT_BYTES, "steps_per_epoch": steps_per_epoch,
            "epochs": epochs, "patience": UNLIMITED}


def resolve(config, spec):
    """`config` with `--model=auto` replaced by `choose`'s settings, keeping each field the user set (any value
    other than TrainConfig's default); logs what it picked. Other models pass through unchanged."""
    if config.model != AUTO:
        return config
    defaults = type(config)(model="", data_dir="", model_dir="")
    settings = choose(spec, config.time_budget, bool(config.init_from))
    if config.init_from:  # fine-tuning: the init run's architecture, whatever it is
        settings["model"], settings["input_height"] = finetune.init_architecture(config.init_from)
    chosen = {name: value for name, value in settings.items()
              if name == "model" or getattr(config, name) == getattr(defaults, name)}
    resolved = dataclasses.replace(config, **chosen)
    logging.info("--model=auto picked %s", describe(resolved, spec))
    return resolved


def describe(config, spec):
    """One line: the model, its input size, and the schedule of a resolved config."""
    height, width = input_size(spec.image_shape, config.input_height)
    length = (f"cosine over {config.time_budget:.0f} s" if config.time_budget
              else f"cosine over {config.epochs} epochs of {config.steps_per_epoch or 'one pass of'} steps")
    return (f"{config.model} at {height}x{width} (images {spec.image_shape[0]}x{spec.image_shape[1]}), "
            f"batch {config.batch_size}, Adam {config.learning_rate:g} with {config.warmup:.0%} warm-up, {length}, "
            f"augment {'on' if config.augment else 'off'}, colour augment {'on' if config.colour_augment else 'off'}, "
            f"cache {'on' if config.cache else 'off'}")

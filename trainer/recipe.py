"""`--model=auto`: training settings chosen from the dataset's spec.json and the time budget.

    python -m trainer.main --model=auto --data_dir=data/real --model_dir=runs/real --time_budget=1200

The choice (docs/real-captchas.md says how each was measured on real captchas): the `attn_small` reader (one attention
and softmax per character position: no CTC blank phase, no collapsed repeats) when every label has one length, else a
CTC reader, `ctc_wide8` (one frame per 8 input columns, 0.67M parameters) or `ctc_small` where that gives too few
frames, raced against `attn_small` with a "no character" class under a time budget (trainer.race); an input tall
enough for the characters to keep CHARACTER_PIXELS of height (trainer.ink measures them on the train split; at least
INPUT_HEIGHT, the width keeping the images' aspect ratio) or, where they are shorter than CROP_BELOW of their frame's
height, each image's text box cut out inside the model and scaled to INPUT_HEIGHT (--crop: the text then fills the
input's height, whatever its size in the frame), batches of BATCH_SIZE (SEVERAL_LENGTHS_BATCH_SIZE for several
lengths), Adam at PEAK_LEARNING_RATE (SEVERAL_LENGTHS_PEAK_LEARNING_RATE for several lengths) with a linear warm-up
and a cosine decay over the time budget (or over enough steps to leave CTC's blank phase far behind when there is
none), mixed_bfloat16 on a CPU with bfloat16 instructions (AMX or AVX512-BF16: more steps in the same budget) and
float32 elsewhere, for labels of several lengths an ink channel and a jitter inside the model (--ink, --jitter:
trainer.models.input_layers), no tf.data augmentation (trainer.augment's jitter helped one real set and stalled
another, and costs steps on a CPU: docs/real-captchas.md), decoded images (where they are cropped, the crop's
output: trainer.prepared) cached in memory when they fit, and validation every 100 to 200 steps (an epoch), so
that the best checkpoint is picked often. Any setting given on the command line (anything but its default) is
kept. With --init_from, the init run's model, input height, ink and crop are kept and the peak learning rate is
FINE_TUNE_PEAK_LEARNING_RATE.
"""
import dataclasses
import math

import keras
from absl import logging

from trainer import finetune, ink
from trainer.models import input_size

AUTO = "auto"
MODEL = "ctc_wide8"  # labels of several lengths: CTC, one frame per 8 input columns (strided: cheap steps), 1.5x
# ctc_stride8's width, no dropout (jittered, that one no longer fit its train images; the width paid for its steps) ...
NARROW_MODEL = "ctc_small"  # ... or per 4 where 8 would give too few frames for the longest label
ONE_LENGTH_MODEL = "attn_small"  # every label of one length
RACE_OTHER = "attn_small"  # labels of several lengths: raced against the CTC reader (trainer.race) under a budget
INPUT_HEIGHT = 32  # the least input height; more where the characters are small in their frame
CHARACTER_PIXELS = 16  # the input is made tall enough for the characters to keep this many pixels of height
HEIGHT_STEP = 16
CROP_BELOW = 0.5  # characters shorter than this share of their frame: --crop (6 points more per step on generic_upper,
# at 36%, than a taller input; on renders whose text fills the frame it only cost steps: docs/real-captchas.md)
BATCH_SIZE = 32
SEVERAL_LENGTHS_BATCH_SIZE = 16  # twice 32's updates to leave CTC's blank phase; its gain is within a run's spread
PEAK_LEARNING_RATE = 3e-3
SEVERAL_LENGTHS_PEAK_LEARNING_RATE = 1e-3  # at 3e-3, ctc_small stayed in the blank phase on wide frames
SEVERAL_LENGTHS_INK = True  # --ink and --jitter for labels of several lengths: 5 points more in 20 minutes on
SEVERAL_LENGTHS_JITTER = True  # generic_upper, val alike on renders of 4-8 characters (docs/real-captchas.md)
FINE_TUNE_PEAK_LEARNING_RATE = 1e-3  # with --init_from: the weights have left the blank phase already
WARMUP = 0.05
CLIPNORM = 5.0
MIN_STEPS = 4000  # without a time budget: at least this many steps (small sets leave the blank phase by ~500)
MIN_EPOCHS = 30  # ... and at least this many passes over a large train split
MIN_STEPS_PER_EPOCH, MAX_STEPS_PER_EPOCH = 100, 200  # validate (and maybe checkpoint) every 100 to 200 steps
BFLOAT16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo flags of CPUs that compute in bfloat16
FAST_PRECISION = "mixed_bfloat16"  # on them: 1.2-1.5x float32's steps (docs/real-captchas.md); emulated elsewhere
CACHE_LIMIT_BYTES = 4e9  # decoded uint8 images kept in memory up to this size
UNLIMITED = 1_000_000  # epochs and patience when the time budget ends training


def input_height(spec, character_height=None):
    """The input height that keeps CHARACTER_PIXELS of height for characters `character_height` (a fraction of the
    frame: trainer.ink.measure) tall: INPUT_HEIGHT at least, in steps of HEIGHT_STEP, and never above the images' own
    height (no pixels to gain there)."""
    if not character_height:
        return INPUT_HEIGHT
    needed = math.ceil(CHARACTER_PIXELS / character_height / HEIGHT_STEP) * HEIGHT_STEP
    return max(INPUT_HEIGHT, min(needed, spec.image_shape[0] // HEIGHT_STEP * HEIGHT_STEP))


def choose(spec, time_budget=None, fine_tune=False, character_height=None, train_examples=None,
           bfloat16_cpu=False, crop=None):
    """The settings of `--model=auto` for a dataset spec (and its characters' height, a fraction of the frame's,
    whether training runs on a CPU with bfloat16 instructions: `bfloat16_cpu`, and --crop as given: None where it was
    not): {TrainConfig field: value}."""
    train_records = min(spec.num_records("train"), train_examples or spec.num_records("train"))
    one_length = len(spec.label_lengths) == 1
    batch_size = BATCH_SIZE if one_length else SEVERAL_LENGTHS_BATCH_SIZE
    one_pass = max(1, math.ceil(train_records / batch_size))
    steps_per_epoch = min(max(one_pass, MIN_STEPS_PER_EPOCH), MAX_STEPS_PER_EPOCH)
    if time_budget:
        epochs = UNLIMITED
    else:
        epochs = max(math.ceil(MIN_STEPS / steps_per_epoch), math.ceil(MIN_EPOCHS * one_pass / steps_per_epoch))
    peak = (FINE_TUNE_PEAK_LEARNING_RATE if fine_tune else PEAK_LEARNING_RATE if one_length
            else SEVERAL_LENGTHS_PEAK_LEARNING_RATE)
    if crop is None:
        crop = bool(character_height) and character_height < CROP_BELOW
    height = INPUT_HEIGHT if crop else input_height(spec, character_height)
    ink = SEVERAL_LENGTHS_INK and not one_length
    # What the cache holds: the stored images, or where they are cropped, the prepared inputs (trainer.prepared).
    cached_shape = (*input_size(spec.image_shape, height), 1 if ink else spec.image_shape[2]) if crop \
        else spec.image_shape
    cached_bytes = sum(spec.num_records(s) for s in ("train", "val")) * math.prod(cached_shape)
    return {"model": ONE_LENGTH_MODEL if one_length else ctc_reader(spec, height), "input_height": height,
            "batch_size": batch_size, "precision": FAST_PRECISION if bfloat16_cpu else "float32",
            "learning_rate": peak, "lr_schedule": "cosine", "warmup": WARMUP, "clipnorm": CLIPNORM,
            "crop": crop, "ink": ink,
            "jitter": SEVERAL_LENGTHS_JITTER and not one_length,
            "augment": False, "cache": cached_bytes <= CACHE_LIMIT_BYTES, "steps_per_epoch": steps_per_epoch,
            "epochs": epochs, "patience": UNLIMITED}


def resolve(config, spec):
    """`config` with `--model=auto` replaced by `choose`'s settings, keeping each field the user set (any value
    other than TrainConfig's default); logs what it picked. Other models pass through unchanged."""
    if config.model != AUTO:
        return config
    defaults = type(config)(model="", data_dir="", model_dir="")
    character_height = None if config.init_from or config.input_height else ink.measure(spec)
    cpu_flag = bfloat16_cpu()
    settings = choose(spec, config.time_budget, bool(config.init_from), character_height, config.train_examples,
                      bool(cpu_flag), config.crop)
    if config.init_from:  # fine-tuning: the init run's architecture, whatever it is
        settings["model"], settings["input_height"], settings["ink"], settings["crop"] = \
            finetune.init_architecture(config.init_from)
    chosen = {name: value for name, value in settings.items()
              if name == "model" or getattr(config, name) == getattr(defaults, name)}
    resolved = dataclasses.replace(config, **chosen)
    why_precision = cpu_flag if resolved.precision == FAST_PRECISION else None
    logging.info("--model=auto picked %s", describe(resolved, spec, character_height, why_precision))
    return resolved


def bfloat16_cpu(cpuinfo="/proc/cpuinfo"):
    """The first of BFLOAT16_CPU_FLAGS that this machine's CPU has, where training runs on it (no GPU visible to the
    backend), else None (also where there is no /proc/cpuinfo to read)."""
    if keras.distribution.list_devices("gpu"):
        return None
    try:
        with open(cpuinfo) as f:
            flags = set(next((line for line in f if line.startswith("flags")), "").split())
    except OSError:
        return None
    return next((flag for flag in BFLOAT16_CPU_FLAGS if flag in flags), None)


def ctc_reader(spec, height):
    """MODEL, or NARROW_MODEL where MODEL's frames (one per 8 input columns) are too few for the longest label (CTC
    needs 2 * length - 1 of them)."""
    width = input_size(spec.image_shape, height)[1]
    return MODEL if width // 8 >= 2 * spec.max_label_length - 1 else NARROW_MODEL


def race_candidates(config, resolved, spec):
    """The readers trainer.race trains side by side before settling on one, for a config as given (`config`) and as
    `resolve` resolved it: the CTC reader it picked and RACE_OTHER when `--model=auto` meets labels of several
    lengths and a time budget (neither reader wins on every such set), else none. Not when fine-tuning: the init
    run's reader stays."""
    if config.model != AUTO or not config.time_budget or config.init_from or len(spec.label_lengths) == 1:
        return ()
    return resolved.model, RACE_OTHER


def describe(config, spec, character_height=None, cpu_flag=None):
    """One line: the model, its input size (and why: the characters' height), its precision (and why: the CPU's
    bfloat16 flag) and the schedule of a resolved config."""
    height, width = input_size(spec.image_shape, config.input_height)
    share = f"; characters {character_height:.0%} of the frame's height" if character_height else ""
    why = (f"{share}, so each image's text box is scaled to it" if config.crop and share
           else "; each image's text box scaled to it" if config.crop
           else f"{share}, {character_height * height:.0f} px at the input" if share else "")
    length = (f"cosine over {config.time_budget:.0f} s" if config.time_budget
              else f"cosine over {config.epochs} epochs of {config.steps_per_epoch or 'one pass of'} steps")
    return (f"{config.model} at {height}x{width} (images {spec.image_shape[0]}x{spec.image_shape[1]}{why}), "
            f"{config.precision}{f' (the CPU has {cpu_flag})' if cpu_flag else ''}, batch {config.batch_size}, "
            f"Adam {config.learning_rate:g} with {config.warmup:.0%} warm-up, {length}, "
            f"crop {'on' if config.crop else 'off'}, ink {'on' if config.ink else 'off'}, "
            f"jitter {'on' if config.jitter else 'off'}, "
            f"augment {'on' if config.augment else 'off'}, colour augment {'on' if config.colour_augment else 'off'}, "
            f"cache {'on' if config.cache else 'off'}")

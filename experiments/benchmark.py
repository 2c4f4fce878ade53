"""Input-pipeline and training throughput on this machine, in one run.

    python -m experiments.benchmark --data_dir=data/bench --batch_size=64

(a) images/s from the shards to batched float tensors through `trainer.data.make_dataset` with no model,
with the process pinned to one core, against raw `tf.io.decode_png` of the same bytes on that core: the
ratio is the pipeline's per-core efficiency; then the same pipeline on every core.
(b) training images/s of each registry model (Keras fit on a cached in-memory dataset, after warm-up).
"""
import os
import time

from absl import app, flags

import keras
import tensorflow as tf

from trainer import command, train
from trainer import data as data_lib
from trainer.errors import UserError, exit_on_user_error
from trainer.models import MODELS, build
from trainer.spec import DatasetSpec

FLAGS = flags.FLAGS


def define_flags():
    """The command line's flags; defined when run as a program, so importing this module defines none."""
    flags.DEFINE_string("data_dir", None, "Dataset folder (spec.json + shards); its train split is read.")
    flags.DEFINE_integer("batch_size", 64, "Batch size for input and training.")
    flags.DEFINE_integer("input_images", 8192, "Images read per input measurement.")
    flags.DEFINE_integer("train_steps", 10, "Timed training steps per model (after 2 warm-up steps).")
    flags.DEFINE_list("models", list(MODELS), "Registry models to time.")
    flags.mark_flag_as_required("data_dir")


def raw_decode_rate(spec, num_images):
    """tf.io.decode_png of the split's image bytes, in chunks of 256 inside one tf.function, no tf.data."""
    encoded = (tf.data.TFRecordDataset(spec.shard_paths("train"))
               .map(lambda r: tf.io.parse_single_example(r, spec.parse_spec(("image",)))["image"])
               .take(num_images).batch(256))
    chunks = list(encoded)
    decode = tf.function(lambda b: tf.map_fn(tf.io.decode_png, b, fn_output_signature=tf.uint8,
                                             parallel_iterations=1))
    decode(chunks[0])
    started = time.perf_counter()
    count = sum(int(decode(chunk).shape[0]) for chunk in chunks)
    return count / (time.perf_counter() - started)


def input_rate(spec, batch_size, num_images):
    """Images/s of make_dataset's training stream (read, shuffle, parse, decode, normalise, batch)."""
    iterator = iter(data_lib.make_dataset(spec, "train", batch_size, training=True))
    for _ in range(3):
        next(iterator)
    batches = num_images // batch_size
    started = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch_size / (time.perf_counter() - started)


def train_rate(name, spec, batch_size, steps):
    """Images/s of Keras fit on batches already in memory, so only the model is timed."""
    model = build(name, spec.image_shape, len(spec.charset), spec.label_lengths)
    train.compile_model(model, spec.charset, 1e-3)
    batches = data_lib.make_dataset(spec, "train", batch_size, training=True).take(4).cache().repeat()
    model.fit(batches, steps_per_epoch=2, epochs=1, verbose=0)
    started = time.perf_counter()
    model.fit(batches, steps_per_epoch=steps, epochs=1, verbose=0)
    return steps * batch_size / (time.perf_counter() - started), model.count_params()


def run(data_dir, batch_size, input_images, train_steps, models):
    """Prints (a) and (b); UserError on a bad flag or dataset."""
    unknown = [name for name in models if name not in MODELS]
    if unknown:
        raise UserError(f"--models: unknown model {unknown[0]!r}; expected some of {', '.join(MODELS)}")
    for flag, value, least in (("batch_size", batch_size, 1), ("input_images", input_images, batch_size),
                               ("train_steps", train_steps, 1)):
        if value < least:
            raise UserError(f"--{flag} must be at least {least}, got {value}")
    keras.utils.set_random_seed(0)
    spec = DatasetSpec.load(data_dir)
    everything = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(everything)})  # (a) per core: this process on one core only
    raw = raw_decode_rate(spec, min(input_images, 4096))
    one = input_rate(spec, batch_size, input_images)
    os.sched_setaffinity(0, everything)
    every = input_rate(spec, batch_size, input_images)
    print("(a)  raw decode_png, 1 core:                   %8.0f images/s" % raw)
    print("(a)  make_dataset -> uint8 batches, 1 core:    %8.0f images/s  ratio to raw %.3f" % (one, one / raw))
    print("(a)  make_dataset, all %d cores:                %8.0f images/s  (%.0f per core)"
          % (len(everything), every, every / len(everything)))
    for name in models:
        rate, params = train_rate(name, spec, batch_size, train_steps)
        print("(b)  train %-4s (%.2fM params), batch %d:       %8.1f images/s" % (
            name, params / 1e6, batch_size, rate))


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    with exit_on_user_error():
        run(FLAGS.data_dir, FLAGS.batch_size, FLAGS.input_images, FLAGS.train_steps, FLAGS.models)


if __name__ == "__main__":
    command.console_script(main, define_flags)()

"""The accuracy protocol: measures a trained model the way README's results table reports it.

    python -m experiments.protocol --model=ctc_fullres --data_dir=data/recipe600k --model_dir=runs/cpu_recipe \\
        --precision=mixed_bfloat16 --time_budget=1800 --lr_schedule=cosine --warmup=0.05 --clipnorm=1.0 \\
        --steps_per_epoch=300 --epochs=1000

Trains with trainer.main's flags (unless --notrain), evaluates on the test split, reads 2,000 captchas
rendered by `captcha.image.ImageCaptcha` directly (not through the pipeline), times CPU prediction
through the exported SavedModel at batch 1 and 64, prints one Markdown row and writes protocol.json.
"""
import io
import json
import os
import random
import time

import captcha.image
import tensorflow as tf
from absl import app, flags

from experiments import report
from trainer import command, macs, metrics, rundir, serving, train_flags
from trainer.errors import UserError, exit_on_user_error
from trainer.spec import DatasetSpec

FLAGS = flags.FLAGS


def define_flags():
    """trainer.main's flags and the protocol's; defined when run as a program, so importing this module defines
    none."""
    train_flags.define()
    flags.DEFINE_bool("train", True, "Train first (--notrain measures an existing --model_dir).")
    flags.DEFINE_integer("direct_count", 2000, "Captchas rendered by captcha.image.ImageCaptcha directly.")

ROW_KEYS = ("model", "params", "file_mb", "mmacs", "train_images_per_s", "train_minutes", "test_captcha_acc",
            "test_char_acc", "direct_captcha_acc", "predict_images_per_s_b1", "predict_images_per_s_b64")


def render_direct(spec, count, seed):
    """`count` (PNG bytes, text) pairs from ImageCaptcha.generate_image with the dataset's charset, lengths
    and size, labels and images drawn from `random` seeded with `seed` (disjoint from any dataset record)."""
    random.seed(seed)
    height, width, _ = spec.image_shape
    generator = captcha.image.ImageCaptcha(width=width, height=height)
    pairs = []
    for _ in range(count):
        text = "".join(random.choice(spec.charset) for _ in range(random.choice(spec.label_lengths)))
        out = io.BytesIO()
        generator.generate_image(text).save(out, format="PNG")
        pairs.append((out.getvalue(), text))
    return pairs


def direct_accuracy(signature, pairs, batch_size=64):
    """Whole-captcha accuracy of the SavedModel signature on (PNG bytes, text) pairs."""
    predicted = []
    for start in range(0, len(pairs), batch_size):
        batch = [png for png, _ in pairs[start:start + batch_size]]
        predicted += [t.decode() for t in signature(images=tf.constant(batch))["text"].numpy()]
    return metrics.compute_metrics([t for _, t in pairs], predicted)["captcha_acc"]


def prediction_rate(signature, png, batch_size, seconds=5.0):
    """Images/s of the SavedModel signature on one PNG repeated `batch_size` times, after a warm-up call."""
    batch = tf.constant([png] * batch_size)
    signature(images=batch)
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        signature(images=batch)
        calls += 1
    return calls * batch_size / (time.perf_counter() - started)


def measure(model_dir, data_dir, train_images_per_s, train_minutes, direct_count=2000, direct_seed=20261125,
            timing_seconds=5.0):
    """Evaluates a trained model_dir; returns the protocol row (dict of ROW_KEYS) and writes protocol.json."""
    if direct_count < 1:
        raise UserError(f"--direct_count must be at least 1, got {direct_count}")
    model = rundir.load_model(model_dir)
    model_path = os.path.join(model_dir, rundir.BEST_MODEL)
    spec = DatasetSpec.load(data_dir)
    test = report.score(model_dir, data_dir, ("test",))
    signature = serving.load_signature(model_dir)
    pairs = render_direct(spec, direct_count, direct_seed)
    row = {
        "model": model.name, "params": model.count_params(),
        "file_mb": os.path.getsize(model_path) / 1e6, "mmacs": macs.count(model) / 1e6,
        "train_images_per_s": train_images_per_s, "train_minutes": train_minutes,
        "test_captcha_acc": test["test_captcha_acc"], "test_char_acc": test["test_char_acc"],
        "direct_captcha_acc": direct_accuracy(signature, pairs),
        "predict_images_per_s_b1": prediction_rate(signature, pairs[0][0], 1, timing_seconds),
        "predict_images_per_s_b64": prediction_rate(signature, pairs[0][0], 64, timing_seconds),
    }
    written = dict(row, test_examples=test["test_examples"], direct_examples=direct_count)
    rundir.write_atomic(os.path.join(model_dir, "protocol.json"), json.dumps(written, indent=2))
    return row


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    config = train_flags.train_config()
    rate = minutes = None
    with exit_on_user_error():
        if FLAGS.train:
            _, rate, minutes = report.train_timed(config)
        row = measure(config.model_dir, config.data_dir, rate, minutes, FLAGS.direct_count)
    print(report.markdown_table([row], ROW_KEYS), end="")


run = command.console_script(main, define_flags)  # the `captcha-protocol` console script


if __name__ == "__main__":
    run()

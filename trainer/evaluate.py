"""Evaluates a trained model on a split of a dataset and prints a table of its metrics (trainer.metrics).

    python -m trainer.evaluate --model_dir=runs/ctc --data_dir=data/synth --split=test

Writes MODEL_DIR/eval_test.json and MODEL_DIR/eval_test_errors.png (mispredicted images, true -> predicted).
"""
from absl import app, flags

from trainer import command, decoding, metrics, scoring
from trainer.errors import exit_on_user_error

flags.DEFINE_string("model_dir", None, "Folder written by trainer.main.")
flags.DEFINE_string("data_dir", None, "Dataset folder holding spec.json and the TFRecord shards.")
flags.DEFINE_enum("split", "test", ["train", "val", "test"], "Split to evaluate.")
flags.DEFINE_integer("batch_size", 64, "Images per batch.")
flags.DEFINE_enum("decoder", None, list(decoding.DECODERS), "CTC decoding; default: the one used in training.")
flags.DEFINE_bool("verify_shards", True, "Check the split's shard sha256 values against the spec first.")
flags.mark_flags_as_required(["model_dir", "data_dir"])
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    with exit_on_user_error():
        result = scoring.evaluate(FLAGS.model_dir, FLAGS.data_dir, FLAGS.split, FLAGS.batch_size,
                                  FLAGS.decoder, FLAGS.verify_shards)
    print(metrics.format_table(result))


run = command.console_script(main)  # the `captcha-evaluate` console script


if __name__ == "__main__":
    run()

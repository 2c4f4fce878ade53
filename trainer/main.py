"""Trains a captcha reader on a dataset written by the pipeline.

    python -m trainer.main --model=ctc --data_dir=data/synth --model_dir=runs/ctc
    python -m trainer.main --model=cnn --data_dir=data/synth --model_dir=runs/cnn --epochs=2 --steps_per_epoch=5

Charset, image shape and label lengths come from DATA_DIR/spec.json. Running again with the same --model_dir
resumes an interrupted run from its last finished epoch.
"""
from absl import app, flags

from trainer import decoding, train
from trainer.errors import UserError
from trainer.models import MODELS

_defaults = train.TrainConfig(model="", data_dir="", model_dir="")
flags.DEFINE_enum("model", None, list(MODELS), "Architecture from trainer.models.MODELS.")
flags.DEFINE_string("data_dir", None, "Dataset folder holding spec.json and the TFRecord shards.")
flags.DEFINE_string("model_dir", None, "Output folder: checkpoints, logs, exported SavedModel.")
flags.DEFINE_integer("batch_size", _defaults.batch_size, "Global batch size (split across replicas).")
flags.DEFINE_integer("epochs", _defaults.epochs, "Maximum number of epochs.")
flags.DEFINE_integer("steps_per_epoch", None, "Train steps per epoch; default one pass over the train split.")
flags.DEFINE_float("learning_rate", _defaults.learning_rate, "Initial Adam learning rate.")
flags.DEFINE_integer("patience", _defaults.patience, "Early stopping: epochs without a better val_captcha_acc.")
flags.DEFINE_integer("lr_patience", _defaults.lr_patience, "Epochs without a lower val_loss before LR / 10.")
flags.DEFINE_enum("decoder", _defaults.decoder, list(decoding.DECODERS), "CTC decoding for validation and export.")
flags.DEFINE_bool("mixed_precision", _defaults.mixed_precision, "mixed_float16 compute (outputs stay float32).")
flags.DEFINE_bool("jit_compile", _defaults.jit_compile, "Compile the train step with XLA.")
flags.DEFINE_enum("strategy", _defaults.strategy, list(train.STRATEGIES), "mirrored: all local GPUs.")
flags.DEFINE_bool("verify_shards", _defaults.verify_shards, "Check shard sha256 values against the spec first.")
flags.DEFINE_bool("cache", _defaults.cache, "Keep decoded uint8 images in memory (small datasets).")
flags.DEFINE_integer("seed", None, "Random seed for weights and shuffling.")
flags.mark_flags_as_required(["model", "data_dir", "model_dir"])
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    config = train.TrainConfig(**{f.name: FLAGS[f.name].value for f in train.dataclasses.fields(train.TrainConfig)})
    try:
        train.train_and_evaluate(config)
    except UserError as e:
        raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
    app.run(main)

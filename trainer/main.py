"""Trains a captcha reader on a dataset written by the pipeline.

    python -m trainer.main --model=ctc --data_dir=data/synth --model_dir=runs/ctc
    python -m trainer.main --model=cnn --data_dir=data/synth --model_dir=runs/cnn --epochs=2 --steps_per_epoch=5
    python -m trainer.main --model=ctc --init_from=runs/ctc --augment --data_dir=data/real --model_dir=runs/real

Charset, image shape and label lengths come from DATA_DIR/spec.json. Running again with the same --model_dir
resumes an interrupted run from its last finished epoch, learning rate and time budget included, if it is the same
--model on the same dataset; a --model_dir holding a finished run is refused (--overwrite starts it over).
--init_from=MODEL_DIR fine-tunes that run's model on DATA_DIR, by default at a 10x lower learning rate.

    KERAS_BACKEND=jax python -m trainer.main --model=ctc --data_dir=data/synth --model_dir=runs/ctc_jax
    training ctc (2,928,069 parameters) on data/synth (48 train, 16 val) with jax on cpu, float32, into runs/ctc_jax

Every Keras backend (tensorflow, jax, torch) trains with the same flags; the line above comes before the first
epoch. See docs/training.md for the flags that depend on the backend and the SavedModel export.
"""
from absl import app

from trainer import command, train, train_flags
from trainer.errors import exit_on_user_error

train_flags.define()


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    config = train_flags.train_config()
    with exit_on_user_error(f"interrupted: run the same command again to resume {config.model_dir} from its last "
                            "finished epoch"):
        train.train_and_evaluate(config)


run = command.console_script(main)  # the `captcha-train` console script


if __name__ == "__main__":
    run()

"""Fine-tuning: the trained weights of another run's model_dir, checked against the new dataset.

    python -m trainer.main --model=ctc --init_from=runs/ctc --data_dir=data/real --model_dir=runs/ctc_real

The new dataset must have the init model's charset. The model is built anew for the new dataset's image shape and
takes the init model's weights when their shapes fit: a CTC model's weights depend on the image height only (and
with --input_height, which the fine-tuned run inherits as it inherits --ink, on nothing of the image), so it carries
over to images of other widths and to other label lengths its time steps allow; a per-position model (cnn) needs the
same image shape and label lengths.
"""
import dataclasses
import os

import keras
import tensorflow as tf

from trainer import decoding, rundir
from trainer.errors import UserError
from trainer.spec import DatasetSpec


def init_weights(init_dir, model_name, spec):
    """The weights (list of numpy arrays) of init_dir's best.keras; UserError unless they fit `model_name` on `spec`."""
    rundir.check_trained(init_dir, "--init_from")
    init_spec = DatasetSpec.load(init_dir)
    init_spec.check_same_task(spec, init_dir, same_shape=False)
    model_path = os.path.join(init_dir, "best.keras")
    if not tf.io.gfile.exists(model_path):
        raise UserError(f"{model_path} not found: --init_from needs a model_dir written by trainer.main")
    init_name = rundir.read_config(init_dir)["model"]
    if init_name != model_name:
        raise UserError(f"architecture mismatch: {init_dir} holds a {init_name!r} model, not {model_name!r}; "
                        f"use --model={init_name}")
    model = keras.models.load_model(model_path, compile=False)
    if decoding.output_kind(model, spec.charset) != decoding.CTC and \
            sorted(init_spec.label_lengths) != sorted(spec.label_lengths):
        raise UserError(f"label length mismatch: the {init_name!r} model in {init_dir} reads labels of length "
                        f"{list(init_spec.label_lengths)}, the dataset has {list(spec.label_lengths)}; "
                        "only a ctc model can change label lengths")
    return model.get_weights()


def init_architecture(init_dir):
    """(model name, input height, ink, crop) of init_dir's run: what a fine-tuned model must share to take its weights,
    and what its weights learnt to read."""
    rundir.check_trained(init_dir, "--init_from")
    previous = rundir.read_config(init_dir)
    return previous["model"], previous.get("input_height"), previous.get("ink", False), previous.get("crop", False)


def inherit(config):
    """`config` with init_from's input height and text crop where none is given, and its ink channel (the first
    conv's weights depend on it)."""
    _, height, ink, crop = init_architecture(config.init_from)
    if config.ink is not None and config.ink != ink:
        what = "ink" if ink else "the images' colours"
        raise UserError(f"--{'' if config.ink else 'no'}ink: the model in {config.init_from} reads {what}; fine-tune "
                        "it without the flag (it inherits the init run's)")
    return dataclasses.replace(config, input_height=height if config.input_height is None else config.input_height,
                               ink=ink, crop=crop if config.crop is None else config.crop)


def set_weights(model, weights, init_dir):
    """Gives `model` init_dir's weights; UserError naming the first layer whose weights do not fit."""
    for variable, value in zip(model.weights, weights):
        if tuple(variable.shape) != value.shape:
            raise UserError(f"the model in {init_dir} does not fit this dataset: {variable.path} is "
                            f"{tuple(value.shape)} there, {tuple(variable.shape)} here (the image height or "
                            "--input_height differs; give the init run's --input_height, or images of its height)")
    if len(model.weights) != len(weights):
        raise UserError(f"the model in {init_dir} has {len(weights)} weights, this one {len(model.weights)}")
    model.set_weights(weights)

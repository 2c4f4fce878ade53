"""Fine-tuning: the trained weights of another run's model_dir, checked against the new dataset.

    python -m trainer.main --model=ctc --init_from=runs/ctc --data_dir=data/real --model_dir=runs/ctc_real

The new dataset must have the init model's charset and image shape. A CTC model reads any label lengths its
time steps allow; a per-position model (cnn) only the lengths it was trained on.
"""
import json
import os

import keras

from trainer import decoding
from trainer import spec as spec_lib
from trainer.errors import UserError


def init_weights(init_dir, model_name, spec):
    """The weights (list of numpy arrays) of init_dir's best.keras; UserError unless they fit `model_name` on `spec`."""
    init_spec = spec_lib.load_spec(init_dir)
    spec_lib.check_same_task(init_spec, spec, init_dir)
    model_path = os.path.join(init_dir, "best.keras")
    if not os.path.exists(model_path):
        raise UserError(f"{model_path} not found: --init_from needs a model_dir written by trainer.main")
    with open(os.path.join(init_dir, "config.json")) as f:
        init_name = json.load(f)["model"]
    if init_name != model_name:
        raise UserError(f"architecture mismatch: {init_dir} holds a {init_name!r} model, not {model_name!r}; "
                        f"use --model={init_name}")
    model = keras.models.load_model(model_path, compile=False)
    if not decoding.is_ctc(model.output_shape[-1], spec["charset"]) and \
            sorted(init_spec["label_lengths"]) != sorted(spec["label_lengths"]):
        raise UserError(f"label length mismatch: the {init_name!r} model in {init_dir} reads labels of length "
                        f"{init_spec['label_lengths']}, the dataset has {spec['label_lengths']}; "
                        "only a ctc model can change label lengths")
    return model.get_weights()

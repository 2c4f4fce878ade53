"""The model registry: name -> pure builder(image_shape, charset_size, label_lengths) -> uncompiled keras.Model.

A new architecture is one file here and one entry in MODELS; `--model` takes its allowed values from MODELS.
"""
from trainer.models import cnn, ctc, ctc_fullres, ctc_lite

MODELS = {
    "cnn": cnn.build,
    "ctc": ctc.build,
    "ctc_lite": ctc_lite.build,
    "ctc_fullres": ctc_fullres.build,
}

"""The model registry: name -> pure builder(image_shape, charset_size, label_lengths) -> uncompiled keras.Model.

A new architecture is one file here and one entry in MODELS; `--model` takes its allowed values from MODELS.
`build` adds the optional input resizing (`--input_height`) around any of them.
"""
import keras
from keras import layers

from trainer.models import cnn, ctc, ctc_fullres, ctc_lite, ctc_small

MODELS = {
    "cnn": cnn.build,
    "ctc": ctc.build,
    "ctc_lite": ctc_lite.build,
    "ctc_fullres": ctc_fullres.build,
    "ctc_small": ctc_small.build,
}
WIDTH_MULTIPLE = 8  # every architecture here pools the width by at most 8


def input_size(image_shape, input_height=None):
    """(height, width) the architecture sees: the image's own, or `input_height` and the width that keeps the
    image's aspect ratio, rounded to a multiple of WIDTH_MULTIPLE."""
    height, width = image_shape[:2]
    if not input_height or input_height == height:
        return height, width
    scaled = max(WIDTH_MULTIPLE, round(width * input_height / height / WIDTH_MULTIPLE) * WIDTH_MULTIPLE)
    return input_height, scaled


def build(name, image_shape, charset_size, label_lengths, input_height=None):
    """MODELS[name] for images of `image_shape` (H, W, C). With `input_height`, the model takes images of
    `image_shape` and first resizes them (bilinear, antialiased) to `input_size`: the architecture's weights then
    depend on the height only, so a CTC reader carries its weights to datasets of other widths (`--init_from`)."""
    size = input_size(image_shape, input_height)
    if size == tuple(image_shape[:2]):
        return MODELS[name](tuple(image_shape), charset_size, label_lengths)
    inner = MODELS[name]((*size, image_shape[2]), charset_size, label_lengths)
    inputs = keras.Input(tuple(image_shape), name="image")
    resized = layers.Resizing(*size, interpolation="bilinear", antialias=True, name="resize")(inputs)
    return keras.Model(inputs, inner(resized), name=inner.name)

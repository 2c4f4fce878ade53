"""The model registry: name -> pure builder(image_shape, charset_size, label_lengths) -> uncompiled keras.Model.

A new architecture is one file here and one entry in MODELS; `--model` takes its allowed values from MODELS.
Builders take float32 images in [0, 1]; `build` wraps any of them in the model trainer.main trains and saves: uint8
images in (what tf.data yields, a quarter of float32's bytes to the accelerator), scaled to [0, 1] inside, the
optional input resizing (`--input_height`) or text crop (`--crop`), and the optional ink channel and training jitter
(`--ink`, `--jitter`: trainer.models.input_layers).
"""
import functools

import keras
from keras import layers

from trainer.models import attn_small, cnn, ctc, ctc_fullres, ctc_lite, ctc_small
from trainer.models.input_layers import Ink, Jitter, TextCrop

EIGHT_COLUMNS = ((2, 2), (2, 2), (2, 2), (2, 1))  # ctc_small's stages pooled to one frame per 8 input columns
MODELS = {
    "attn_small": attn_small.build,
    "attn_base": functools.partial(attn_small.build, widths=(64, 128, 192, 256), rnn_units=128, dense_units=256,
                                   name="attn_base"),
    "cnn": cnn.build,
    "ctc": ctc.build,
    "ctc_lite": ctc_lite.build,
    "ctc_fullres": ctc_fullres.build,
    "ctc_small": ctc_small.build,
    "ctc_small8": functools.partial(ctc_small.build, pools=EIGHT_COLUMNS, name="ctc_small8"),
    "ctc_stride8": functools.partial(ctc_small.build, pools=EIGHT_COLUMNS, strided_stages=2, name="ctc_stride8"),
    "ctc_wide8": functools.partial(ctc_small.build, pools=EIGHT_COLUMNS, strided_stages=2, widths=(48, 96, 144, 192),
                                   rnn_units=96, dense_units=192, dropout=0.0, name="ctc_wide8"),
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


def build(name, image_shape, charset_size, label_lengths, input_height=None, ink=False, jitter=False, crop=False):
    """MODELS[name] for uint8 images of `image_shape` (H, W, C), scaled to [0, 1] first. With `input_height`, the
    model then resizes them (bilinear, antialiased) to `input_size`: the architecture's weights then depend on the
    height only, so a CTC reader carries its weights to datasets of other widths (`--init_from`). With `crop`, each
    image's text box is scaled to that size instead (input_layers.TextCrop), even at the image's own. With `ink`, the
    architecture reads one channel of ink (input_layers.Ink) in place of the image's channels; with `jitter`, each
    training image is randomly jittered (input_layers.Jitter) just before it."""
    return build_parts(name, image_shape, charset_size, label_lengths, input_height, ink, jitter, crop)[0]


def build_parts(name, image_shape, charset_size, label_lengths, input_height=None, ink=False, jitter=False,
                crop=False):
    """(model, trainable): `build`'s model, and the same weights behind another input, for training on images that
    `preparation` has already prepared (uint8 [*input_size, channels], made once before tf.data's cache): that one
    scales them to [0, 1] and jitters them, and shares every layer after that with `model`."""
    size = input_size(image_shape, input_height)
    channels = 1 if ink else image_shape[2]
    inner = MODELS[name]((*size, channels), charset_size, label_lengths)
    jitter_layer = Jitter(name="jitter") if jitter else None

    def head(x):
        return inner(jitter_layer(x) if jitter_layer else x)

    inputs = keras.Input(tuple(image_shape), dtype="uint8", name="image")
    prepare = preparation_layers(image_shape, input_height, ink, crop)
    model = keras.Model(inputs, head(prepare(inputs)), name=inner.name)
    prepared = keras.Input((*size, channels), dtype="uint8", name="prepared")
    trainable = keras.Model(prepared, head(layers.Rescaling(1 / 255, name="scale_prepared")(prepared)),
                            name=inner.name)
    return model, trainable


def preparation_layers(image_shape, input_height=None, ink=False, crop=False):
    """The function (uint8 [B, H, W, C] -> float [B, *input_size, channels] in [0, 1]) of `build`'s layers before the
    jitter: the scaling, the crop or resize and the ink. Each call makes new layers; none has weights."""
    size = input_size(image_shape, input_height)

    def prepare(x):
        x = layers.Rescaling(1 / 255, name="scale")(x)
        if crop:
            x = TextCrop(size, name="crop")(x)
        elif size != tuple(image_shape[:2]):
            x = layers.Resizing(*size, interpolation="bilinear", antialias=True, name="resize")(x)
        return Ink(name="ink")(x) if ink else x

    return prepare


def preparation(image_shape, input_height=None, ink=False, crop=False):
    """A keras.Model of `preparation_layers`: uint8 images of `image_shape` in, uint8 images as the architecture's
    input size and channels out (rounded from [0, 1]), what `build_parts`' trainable model reads."""
    inputs = keras.Input(tuple(image_shape), dtype="uint8", name="image")
    x = preparation_layers(image_shape, input_height, ink, crop)(inputs)
    x = layers.Lambda(lambda v: keras.ops.cast(keras.ops.round(keras.ops.clip(v, 0.0, 1.0) * 255.0), "uint8"),
                      name="to_uint8")(x)
    return keras.Model(inputs, x, name="preparation")


def uint8_input(model):
    """A model saved before trainer.main fed uint8 (it takes float32 in [0, 1]) behind the same scaling `build`
    adds; a model that takes uint8 as it is."""
    if model.inputs[0].dtype == "uint8":
        return model
    inputs = keras.Input(model.input_shape[1:], dtype="uint8", name="image")
    return keras.Model(inputs, model(layers.Rescaling(1 / 255, name="scale")(inputs)), name=model.name)

"""Building blocks shared by the architectures: the seed's conv block (ypwhs/captcha_break), CTC sequence helpers."""
import keras
from keras import layers


def conv_block(x, filters, pool_size, convs=2, bn_momentum=0.99, strided=False):
    """`convs` (the seed: two) conv3x3-BN-ReLU, then max-pool by `pool_size`; `bn_momentum` is BatchNorm's (Keras
    default 0.99: moving statistics average over ~100 steps). `strided`: the first conv strides by `pool_size` in
    place of the max-pool, computing a quarter of the outputs (where the input is large, most of a step's time)."""
    for i in range(convs):
        x = layers.Conv2D(filters, 3, strides=pool_size if strided and i == 0 else 1, padding="same",
                          kernel_initializer="he_uniform")(x)
        x = layers.BatchNormalization(momentum=bn_momentum)(x)
        x = layers.Activation("relu")(x)
    return x if strided else layers.MaxPooling2D(pool_size)(x)


def filters(block):
    """Filters of block `block` (0-based): 32, 64, 128, 256, 256, ..."""
    return 32 * 2 ** min(block, 3)



def to_sequence(x, label_lengths, model_name, image_width):
    """Conv features [B, H, W, C] -> [B, W, H*C], width as CTC time; ValueError if too few time steps.

    The worst case ("AAAA") needs a blank between repeats: 2 * length - 1 steps.
    """
    _, height, time_steps, channels = x.shape
    if time_steps < 2 * max(label_lengths) - 1:
        raise ValueError(f"the {model_name} model gives {time_steps} time steps for width {image_width}, too few "
                         f"for labels of length {max(label_lengths)} (needs {2 * max(label_lengths) - 1})")
    x = layers.Permute((2, 1, 3))(x)  # [batch, width (time), height, channels]
    return layers.Reshape((time_steps, height * channels))(x)


def cudnn_bigru(x, units):
    """A bidirectional GRU in the configuration Keras runs on cuDNN on a GPU (no masking either)."""
    return layers.Bidirectional(layers.GRU(
        units, return_sequences=True, activation="tanh", recurrent_activation="sigmoid",
        recurrent_dropout=0.0, unroll=False, use_bias=True, reset_after=True))(x)


def ctc_head(inputs, features, charset_size, label_lengths, name, dense_units, rnn_units, dropout=0.0, rnns=1):
    """The CTC head on conv `features` of `inputs`: frames along the width (to_sequence), Dense(`dense_units`),
    dropout where `dropout` > 0, `rnns` cuDNN BiGRUs, and probabilities [batch, time, charset_size + 1] (blank last,
    float32 under mixed precision) from the layer named "chars"; the keras.Model named `name`."""
    x = to_sequence(features, label_lengths, name, inputs.shape[2])
    x = layers.Dense(dense_units, activation="relu")(x)
    if dropout:
        x = layers.Dropout(dropout)(x)
    for _ in range(rnns):
        x = cudnn_bigru(x, rnn_units)
    outputs = layers.Dense(charset_size + 1, activation="softmax", dtype="float32", name="chars")(x)
    return keras.Model(inputs, outputs, name=name)

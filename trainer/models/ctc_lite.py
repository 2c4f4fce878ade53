"""A CPU-sized CNN + bidirectional GRU + CTC reader, for training on a few cores (README: CPU recipe).

A stride-2 stem and four narrow stages of the seed's conv block give ~25M multiply-adds per 128x64 image,
about 1/20 of the `ctc` model's, and 16 time steps; one cuDNN-eligible BiGRU reads them.
Output: probabilities [batch, time, len(charset) + 1], blank last, float32 even under mixed precision.
"""
import keras
from keras import layers

from trainer.models.blocks import conv_block, ctc_head


def build(image_shape, charset_size, label_lengths, widths=(16, 32, 64, 96), rnn_units=64, dense_units=96):
    """Returns the uncompiled model; stages after the stem pool (2, 2) then (2, 1), (2, 1)."""
    inputs = keras.Input(image_shape, name="image")
    x = layers.Conv2D(widths[0], 3, strides=2, padding="same", kernel_initializer="he_uniform")(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = layers.MaxPooling2D(2)(x)
    for width, pool in zip(widths[1:], ((2, 2), (2, 1), (2, 1))):
        x = conv_block(x, width, pool_size=pool)
    return ctc_head(inputs, x, charset_size, label_lengths, "ctc_lite", dense_units, rnn_units)

"""A CPU-sized CNN + bidirectional GRU + CTC reader that convolves the image at full resolution (README: CPU recipe).

The stem is one conv3x3-ReLU at 128x64 (no BatchNorm: at full resolution its cost would rival the convolutions'),
then max-pooling, one conv3x3-BN-ReLU stage of 32 filters and two blocks of two convs of 96 and 128 filters:
0.52M parameters, ~140M multiply-adds per 128x64 image and 32 time steps, which one cuDNN-eligible BiGRU reads.
Output: probabilities [batch, time, len(charset) + 1], blank last, float32 even under mixed precision.

    python -m experiments.protocol --model=ctc_fullres --precision=mixed_bfloat16 --data_dir=data/recipe600k ...
"""
import keras
from keras import layers

from trainer.models.blocks import conv_block, ctc_head

# BatchNorm's moving statistics average over ~10 steps instead of Keras's ~100, so that they keep up with weights
# that move fast at the peak learning rate of a short run (README: CPU recipe).
BN_MOMENTUM = 0.9


def build(image_shape, charset_size, label_lengths, widths=(16, 32, 96, 128), rnn_units=64, dense_units=128):
    """Returns the uncompiled model; stages after the stem pool (2, 2) then (2, 1), (2, 1)."""
    inputs = keras.Input(image_shape, name="image")
    x = layers.Conv2D(widths[0], 3, padding="same", activation="relu", kernel_initializer="he_uniform")(inputs)
    x = layers.MaxPooling2D(2)(x)
    for width, pool, convs in zip(widths[1:], ((2, 2), (2, 1), (2, 1)), (1, 2, 2)):
        x = conv_block(x, width, pool_size=pool, convs=convs, bn_momentum=BN_MOMENTUM)
    return ctc_head(inputs, x, charset_size, label_lengths, "ctc_fullres", dense_units, rnn_units)

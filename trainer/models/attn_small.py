"""ctc_small's reader with a per-position head in place of CTC: no blank phase, no collapsed repeats, and weights
that do not depend on the image width.

The conv stages, Dense and BiGRU of ctc_small turn an HxW input into W/4 frames; one attention per character
position (a Dense of one logit per position per frame, softmax over the frames) pools the frames into that
position's features, and a shared softmax reads its character. 0.31M parameters at 36 characters, about
ctc_small's multiply-adds. Labels of one length: output probabilities [batch, label_length, len(charset)], float32,
as the `cnn` model's. Labels of several lengths: one position per character of the longest label, and one more
class, "no character here" (trainer.decoding.POSITIONS_END), that the positions past a shorter label learn.
`attn_base` (trainer.models.MODELS) is the same reader with twice the filters (about four times the parameters and
multiply-adds), for large train splits.

    python -m trainer.main --model=attn_small --input_height=32 --data_dir=data/real --model_dir=runs/attn
"""
import keras
from keras import layers

from trainer.decoding import END_LAYER
from trainer.models.blocks import conv_block, cudnn_bigru, to_sequence
from trainer.models.ctc_small import BN_MOMENTUM


def build(image_shape, charset_size, label_lengths, widths=(32, 64, 96, 128), rnn_units=64, dense_units=128,
          dropout=0.2, name="attn_small", pools=((2, 2), (2, 2), (2, 1), (2, 1))):
    """Returns the uncompiled model for images of `image_shape` (H, W, C) and labels of `label_lengths`."""
    positions = max(label_lengths)
    several_lengths = len(set(label_lengths)) > 1
    inputs = keras.Input(image_shape, name="image")
    x = inputs
    for width, pool in zip(widths, pools):
        x = conv_block(x, width, pool_size=pool, convs=1, bn_momentum=BN_MOMENTUM)
    x = to_sequence(x, [1], "attn_small", image_shape[1])  # any number of frames will do
    x = layers.Dense(dense_units, activation="relu")(x)
    x = layers.Dropout(dropout)(x)
    frames = cudnn_bigru(x, rnn_units)  # [batch, time, 2 * rnn_units]
    attention = layers.Softmax(axis=1, name="attention")(layers.Dense(positions)(frames))  # [batch, time, L]
    pooled = layers.Dot(axes=1)([attention, frames])  # [batch, L, 2 * rnn_units]
    outputs = layers.Dense(charset_size + several_lengths, activation="softmax", dtype="float32",
                           name=END_LAYER if several_lengths else "chars")(pooled)
    return keras.Model(inputs, outputs, name=name)

"""ctc_small's reader with a per-position head in place of CTC, for labels of one length: no blank, no collapsed
repeats, and weights that do not depend on the image width.

The conv stages, Dense and BiGRU of ctc_small turn a 32xW input into W/4 frames; one attention per character
position (a Dense of label_length logits per frame, softmax over the frames) pools the frames into that position's
features, and a shared softmax reads its character. 0.31M parameters at 36 characters, about ctc_small's
multiply-adds. Output: probabilities [batch, label_length, len(charset)], float32, as the `cnn` model's.

    python -m trainer.main --model=attn_small --input_height=32 --data_dir=data/real --model_dir=runs/attn
"""
import keras
from keras import layers

from trainer.models.blocks import conv_block, cudnn_bigru, to_sequence
from trainer.models.ctc_small import BN_MOMENTUM


def build(image_shape, charset_size, label_lengths, widths=(32, 64, 96, 128), rnn_units=64, dense_units=128,
          dropout=0.2):
    """Returns the uncompiled model for images of `image_shape` (H, W, C) and labels of one fixed length."""
    if len(set(label_lengths)) != 1:
        raise ValueError(f"the attn_small model needs fixed-length labels, the dataset has lengths "
                         f"{sorted(label_lengths)}; use --model=ctc_small")
    inputs = keras.Input(image_shape, name="image")
    x = inputs
    for width, pool in zip(widths, ((2, 2), (2, 2), (2, 1), (2, 1))):
        x = conv_block(x, width, pool_size=pool, convs=1, bn_momentum=BN_MOMENTUM)
    x = to_sequence(x, [1], "attn_small", image_shape[1])
    x = layers.Dense(dense_units, activation="relu")(x)
    x = layers.Dropout(dropout)(x)
    frames = cudnn_bigru(x, rnn_units)  # [batch, time, 2 * rnn_units]
    attention = layers.Softmax(axis=1, name="attention")(layers.Dense(label_lengths[0])(frames))  # [batch, time, L]
    positions = layers.Dot(axes=1)([attention, frames])  # [batch, L, 2 * rnn_units]
    outputs = layers.Dense(charset_size, activation="softmax", dtype="float32", name="chars")(positions)
    return keras.Model(inputs, outputs, name="attn_small")

"""Multi-head CNN (ypwhs/captcha_break): 5 conv blocks, then one softmax head per character position.

Output: probabilities [batch, label_length, len(charset)], float32 even under mixed precision.
Fixed-length labels only.
"""
import keras
from keras import layers

from trainer.models.blocks import conv_block, filters


def build(image_shape, charset_size, label_lengths, num_blocks=5, dropout=0.25):
    """Returns the uncompiled model for images of `image_shape` (H, W, C) and labels of one fixed length."""
    if len(set(label_lengths)) != 1:
        raise ValueError(f"the cnn model needs fixed-length labels, the dataset has lengths {sorted(label_lengths)}; "
                         "use --model=ctc")
    label_length = label_lengths[0]
    inputs = keras.Input(image_shape, name="image")
    x = inputs
    for i in range(num_blocks):
        x = conv_block(x, filters(i), pool_size=2)
    x = layers.Flatten()(x)
    x = layers.Dropout(dropout)(x)
    heads = [layers.Dense(charset_size, activation="softmax", dtype="float32", name=f"char_{i}")(x)
             for i in range(label_length)]
    heads = [layers.Reshape((1, charset_size), dtype="float32")(h) for h in heads]
    outputs = heads[0] if label_length == 1 else layers.Concatenate(axis=1, dtype="float32", name="chars")(heads)
    return keras.Model(inputs, outputs, name="cnn")

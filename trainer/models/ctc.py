"""CNN + 2 bidirectional GRU + CTC (ypwhs/captcha_break's CTC model): image width is the time axis.

Output: probabilities [batch, time, len(charset) + 1], blank last, float32 even under mixed precision.
The GRUs keep Keras' cuDNN-eligible configuration (tanh/sigmoid, no recurrent dropout, no unroll, bias,
reset_after, no masking), so they run on cuDNN on a GPU.
"""
import keras

from trainer.models.blocks import conv_block, ctc_head, filters


def build(image_shape, charset_size, label_lengths, num_blocks=5, width_pools=3, rnn_units=128, dropout=0.25):
    """Returns the uncompiled model; the first `width_pools` blocks pool (2, 2), the rest (2, 1)."""
    inputs = keras.Input(image_shape, name="image")
    x = inputs
    for i in range(num_blocks):
        x = conv_block(x, filters(i), pool_size=(2, 2) if i < width_pools else (2, 1))
    return ctc_head(inputs, x, charset_size, label_lengths, "ctc", rnn_units, rnn_units, dropout, rnns=2)

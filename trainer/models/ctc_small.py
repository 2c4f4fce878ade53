"""A small CNN + bidirectional GRU + CTC reader for short inputs (32 pixels high): `--model=auto`'s choice.

Four conv3x3-BN-ReLU stages of 32, 64, 96 and 128 filters pooled (2, 2), (2, 2), (2, 1), (2, 1), so a 32xW
input gives W/4 time steps of 2x128 features; Dense(128), dropout and one cuDNN-eligible BiGRU(64) read them.
0.30M parameters, ~30M multiply-adds at 32x128. On ~1,000 real captchas it leaves CTC's blank phase in ~200 steps
(docs/real-captchas.md). Output: probabilities [batch, time, len(charset) + 1], blank last, float32.
`ctc_small8` (trainer.models.MODELS) pools the width once more, (2, 2) in the third stage: one frame per 8 input
columns, for wide frames where most columns hold no character (it left the blank phase in ~500 steps on 48x276
inputs of 4 to 8 small characters, where ctc_small needed ~1,000: docs/real-captchas.md). `ctc_stride8` is
ctc_small8 whose first two stages downsample by a strided conv in place of conv-then-max-pool: the same parameters,
a quarter of those stages' multiply-adds, twice the training steps/s at 48x272 on a 2-core CPU (docs/experiments.md).
`ctc_wide8` is ctc_stride8 1.5 times as wide (stages of 48 to 192 filters, Dense(192), BiGRU(96): 0.67M parameters)
and without its dropout, `--model=auto`'s reader for labels of several lengths: with the jitter it no longer fits its
training images, so the width read more in the same minutes than the steps it costs, and the dropout only slowed it
(docs/experiments.md).

    python -m trainer.main --model=auto --data_dir=data/real --model_dir=runs/real --time_budget=1200
"""
import keras

from trainer.models.blocks import conv_block, ctc_head

BN_MOMENTUM = 0.9  # moving statistics that keep up with the fast weights of short runs, as in ctc_fullres


def build(image_shape, charset_size, label_lengths, widths=(32, 64, 96, 128), rnn_units=64, dense_units=128,
          dropout=0.2, pools=((2, 2), (2, 2), (2, 1), (2, 1)), strided_stages=0, name="ctc_small"):
    """Returns the uncompiled model; its first `strided_stages` stages downsample by a strided conv, not a max-pool."""
    inputs = keras.Input(image_shape, name="image")
    x = inputs
    for stage, (width, pool) in enumerate(zip(widths, pools)):
        x = conv_block(x, width, pool_size=pool, convs=1, bn_momentum=BN_MOMENTUM, strided=stage < strided_stages)
    return ctc_head(inputs, x, charset_size, label_lengths, name, dense_units, rnn_units, dropout)

"""trainer.macs against multiply-adds counted by hand."""
import keras

from trainer import macs


def test_counts_conv_dense_and_gru_by_hand():
    inputs = keras.Input((8, 8, 2))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)           # 8*8 positions * 4 out * 3*3*2 in
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.MaxPooling2D(2)(x)                              # -> 4x4x4
    x = keras.layers.Reshape((4, 16))(x)
    x = keras.layers.Dense(6)(x)                                     # 4 positions * 16 * 6
    x = keras.layers.Bidirectional(keras.layers.GRU(5, return_sequences=True))(x)  # 2 * 4 * 3*5*(6+5)
    outputs = keras.layers.Dense(3)(keras.layers.GRU(2)(x))          # 4*3*2*(10+2), then 2*3
    model = keras.Model(inputs, outputs)
    assert macs.count(model) == 8 * 8 * 4 * 18 + 4 * 16 * 6 + 2 * 4 * 15 * 11 + 4 * 6 * 12 + 6

"""Multiply-adds per image of a Keras model, counted from its layers' shapes.

    python -c "from trainer import macs; from trainer.models import MODELS; \\
               print(macs.count(MODELS['ctc']((64, 128, 3), 36, [4])) / 1e6, 'M')"

Counts Conv2D, Dense (per position of its input) and GRU (input and recurrent kernels per time step);
batch norm, activations and pooling are a few per cent at most and left out.
"""
import math

import keras


def _gru(layer, input_shape):
    steps, features = input_shape[1], input_shape[-1]
    return steps * 3 * layer.units * (features + layer.units)


def count(model):
    """Multiply-adds for one input image, through nested models and Bidirectional wrappers."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            total += count(layer)
        elif isinstance(layer, keras.layers.Conv2D):
            kh, kw = layer.kernel_size
            _, h, w, c = layer.output.shape
            total += h * w * c * kh * kw * layer.input.shape[-1] // layer.groups
        elif isinstance(layer, keras.layers.Dense):
            positions = math.prod(layer.input.shape[1:-1])
            total += positions * layer.input.shape[-1] * layer.units
        elif isinstance(layer, keras.layers.Bidirectional):
            total += 2 * _gru(layer.forward_layer, layer.input.shape)
        elif isinstance(layer, keras.layers.GRU):
            total += _gru(layer, layer.input.shape)
    return total

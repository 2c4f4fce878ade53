"""Losses matching trainer.decoding's output conventions."""
import keras
from keras import ops

from trainer import decoding


@keras.saving.register_keras_serializable(package="trainer")
class CTCLoss(keras.losses.Loss):
    """CTC loss on probabilities [B, T, K] with blank index K - 1 and labels padded with data.PAD (-1).

    keras.losses.CTC fixes blank = 0 and pads with 0, which would clash with charset index 0, so this one takes
    label lengths from the padding instead. keras.ops.ctc_loss wants logits; log-probabilities are valid logits
    (its log-softmax leaves them unchanged).
    """

    def __init__(self, blank_index, name="ctc", **kwargs):
        super().__init__(name=name, **kwargs)
        self.blank_index = blank_index

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "int32")
        valid = y_true >= 0
        label_length = ops.sum(ops.cast(valid, "int32"), axis=-1)
        batch, steps = ops.shape(y_pred)[0], ops.shape(y_pred)[1]
        logits = ops.log(ops.maximum(ops.cast(y_pred, "float32"), 1e-12))
        return ops.ctc_loss(ops.where(valid, y_true, 0), logits, label_length,
                            ops.full((batch,), steps, dtype="int32"), mask_index=self.blank_index)

    def get_config(self):
        return {**super().get_config(), "blank_index": self.blank_index}


@keras.saving.register_keras_serializable(package="trainer")
class EndPaddedCrossentropy(keras.losses.Loss):
    """Per-position cross-entropy where a padded position (data.PAD, -1) is the target class `end_index`: a
    POSITIONS_END reader learns to say "no character here" past the end of a shorter label."""

    def __init__(self, end_index, name="end_padded_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.end_index = end_index

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "int32")
        targets = ops.where(y_true >= 0, y_true, self.end_index)
        return ops.mean(keras.losses.sparse_categorical_crossentropy(targets, y_pred), axis=-1)

    def get_config(self):
        return {**super().get_config(), "end_index": self.end_index}


def loss_for(model, charset):
    """The training loss for `model`'s output kind (trainer.decoding.output_kind)."""
    kind = decoding.output_kind(model, charset)
    if kind == decoding.CTC:
        return CTCLoss(blank_index=len(charset))
    if kind == decoding.POSITIONS_END:
        return EndPaddedCrossentropy(end_index=len(charset))
    return keras.losses.SparseCategoricalCrossentropy()

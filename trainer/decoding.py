"""Model output -> text, shared by the validation callback, evaluate, predict and the exported SavedModel.

Every model outputs per-step probabilities [batch, steps, classes] (float32), of one of three kinds:
- POSITIONS (`cnn`, `attn_small` on labels of one length): one step per character, classes = len(charset);
- CTC (`ctc`, ...): classes = len(charset) + 1, the blank being the last class (BLANK = len(charset));
- POSITIONS_END (`attn_small` on labels of several lengths): one step per position up to the longest label,
  classes = len(charset) + 1, the last being "no character here" (END = len(charset)); its output layer is named
  END_LAYER, which is how `output_kind` tells it from CTC.
`output_kind` reads the kind off a model, so a saved model plus its spec.json is enough to decode it.

`decode` is keras.ops only, so it runs on every Keras backend (and inside the TensorFlow export graph);
`ids_to_texts` turns its ids, as numpy, into Python strings.
"""
from keras import ops

from trainer.errors import UserError

DECODERS = ("greedy", "beam_search")
PAD = -1  # pads label ids: the labels of trainer.data and decode's output
CTC, POSITIONS, POSITIONS_END = "ctc", "positions", "positions_end"
END_LAYER = "chars_or_end"  # the output layer of a POSITIONS_END model


def is_ctc(num_classes, charset):
    """True for a CTC output (charset + blank), False for per-position; UserError if it fits neither."""
    if num_classes == len(charset) + 1:
        return True
    if num_classes == len(charset):
        return False
    raise UserError(f"charset mismatch: the model outputs {num_classes} classes, "
                    f"which fits neither {len(charset)} characters (per position) nor {len(charset)} + blank (CTC); "
                    f"charset is {charset!r}")


def output_kind(model, charset):
    """CTC, POSITIONS or POSITIONS_END for a Keras model's output (UserError if its classes fit no kind)."""
    if _has_layer(model, END_LAYER):
        if model.output_shape[-1] != len(charset) + 1:
            raise UserError(f"charset mismatch: the model outputs {model.output_shape[-1]} classes, not "
                            f"{len(charset)} characters + end; charset is {charset!r}")
        return POSITIONS_END
    return CTC if is_ctc(model.output_shape[-1], charset) else POSITIONS


def _has_layer(model, name):
    return any(layer.name == name or (hasattr(layer, "layers") and _has_layer(layer, name))
               for layer in model.layers)


def decode(probs, charset, decoder="greedy", beam_width=16, kind=None):
    """Probabilities [B, T, K] -> (label ids int32 [B, T] padded with PAD, confidence float32 [B]), as tensors of
    the Keras backend.

    `kind` is `output_kind`'s (None: CTC or POSITIONS by the number of classes). Confidence is the probability of the
    returned path: per position, the product of each head's max probability (END positions included); CTC greedy, the product of the max probability at every time step (blanks included); CTC beam search, the
    exp of the beam's log probability.
    """
    if decoder not in DECODERS:
        raise UserError(f"unknown decoder {decoder!r}; expected one of {', '.join(DECODERS)}")
    probs = ops.cast(probs, "float32")
    kind = kind or (CTC if is_ctc(probs.shape[-1], charset) else POSITIONS)
    if kind != CTC:
        ids = ops.cast(ops.argmax(probs, axis=-1), "int32")
        if kind == POSITIONS_END:  # "no character" positions read as padding, wherever they stand
            ids = ops.where(ids == len(charset), PAD, ids)
        return ids, ops.prod(ops.max(probs, axis=-1), axis=-1)
    batch, steps = ops.shape(probs)[0], ops.shape(probs)[1]
    log_probs = ops.log(ops.maximum(probs, 1e-12))
    ids, scores = ops.ctc_decode(log_probs, ops.full((batch,), steps, dtype="int32"), strategy=decoder,
                                 beam_width=beam_width, top_paths=1, mask_index=len(charset))
    if decoder == "greedy":
        confidence = ops.prod(ops.max(probs, axis=-1), axis=-1)
    else:
        confidence = ops.exp(ops.cast(scores[:, 0], "float32"))
    # ctc_decode pads with -1 (== PAD) and, for beam search, may return fewer than T columns.
    ids = ops.cast(ids[0], "int32")
    ids = ops.pad(ids, [[0, 0], [0, steps - ops.shape(ids)[1]]], constant_values=PAD)
    return ids, confidence


def ids_to_texts(ids, charset):
    """Label ids [B, L] (numpy or a backend tensor; PAD ignored) -> list of B strings."""
    return ["".join(charset[i] for i in row if i >= 0) for row in ops.convert_to_numpy(ids).tolist()]


def predict_text(model, images, charset, decoder="greedy"):
    """uint8 images [B, H, W, C] -> (list of str, numpy confidences) with the Keras model."""
    ids, confidence = decode(model.predict_on_batch(images), charset, decoder,  # compiled, on every backend
                             kind=output_kind(model, charset))
    return ids_to_texts(ids, charset), ops.convert_to_numpy(confidence)

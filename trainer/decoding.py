"""Model output -> text, shared by the validation callback, evaluate, predict and the exported SavedModel.

Every model outputs per-step probabilities [batch, steps, classes] (float32):
- per-position models (`cnn`): one step per character, classes = len(charset);
- CTC models (`ctc`): classes = len(charset) + 1, the blank being the last class (BLANK = len(charset)).
The output width tells them apart, so a saved model plus its spec.json is enough to decode it.

`decode` is keras.ops only, so it runs on every Keras backend (and inside the TensorFlow export graph);
`ids_to_texts` turns its ids, as numpy, into Python strings.
"""
from keras import ops

from trainer.errors import UserError

DECODERS = ("greedy", "beam_search")
PAD = -1  # pads label ids: the labels of trainer.data and decode's output


def is_ctc(num_classes, charset):
    """True for a CTC output (charset + blank), False for per-position; UserError if it fits neither."""
    if num_classes == len(charset) + 1:
        return True
    if num_classes == len(charset):
        return False
    raise UserError(f"charset mismatch: the model outputs {num_classes} classes, "
                    f"which fits neither {len(charset)} characters (per position) nor {len(charset)} + blank (CTC); "
                    f"charset is {charset!r}")


def decode(probs, charset, decoder="greedy", beam_width=16):
    """Probabilities [B, T, K] -> (label ids int32 [B, T] padded with PAD, confidence float32 [B]), as tensors of
    the Keras backend.

    Confidence is the probability of the returned path: per position, the product of each head's max probability;
    CTC greedy, the product of the max probability at every time step (blanks included); CTC beam search, the
    exp of the beam's log probability.
    """
    if decoder not in DECODERS:
        raise UserError(f"unknown decoder {decoder!r}; expected one of {', '.join(DECODERS)}")
    probs = ops.cast(probs, "float32")
    if not is_ctc(probs.shape[-1], charset):
        return ops.cast(ops.argmax(probs, axis=-1), "int32"), ops.prod(ops.max(probs, axis=-1), axis=-1)
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
    ids, confidence = decode(model.predict_on_batch(images), charset, decoder)  # compiled, on every backend
    return ids_to_texts(ids, charset), ops.convert_to_numpy(confidence)

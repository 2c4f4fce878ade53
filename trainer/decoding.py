"""Model output -> text, shared by the validation callback, evaluate, predict and the exported SavedModel.

Every model outputs per-step probabilities [batch, steps, classes] (float32):
- per-position models (`cnn`): one step per character, classes = len(charset);
- CTC models (`ctc`): classes = len(charset) + 1, the blank being the last class (BLANK = len(charset)).
The output width tells them apart, so a saved model plus its spec.json is enough to decode it.
"""
import keras
import tensorflow as tf

from trainer.data import PAD
from trainer.errors import UserError

DECODERS = ("greedy", "beam_search")


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
    """Probabilities [B, T, K] -> (label ids int32 [B, T] padded with PAD, confidence float32 [B]).

    Confidence is the probability of the returned path: per position, the product of each head's max probability;
    CTC greedy, the product of the max probability at every time step (blanks included); CTC beam search, the
    exp of the beam's log probability.
    """
    if decoder not in DECODERS:
        raise UserError(f"unknown decoder {decoder!r}; expected one of {', '.join(DECODERS)}")
    probs = tf.cast(probs, tf.float32)
    if not is_ctc(probs.shape[-1], charset):
        return tf.argmax(probs, axis=-1, output_type=tf.int32), tf.reduce_prod(tf.reduce_max(probs, -1), -1)
    batch, steps = tf.shape(probs)[0], tf.shape(probs)[1]
    log_probs = tf.math.log(tf.maximum(probs, 1e-12))
    ids, scores = keras.ops.ctc_decode(log_probs, tf.fill([batch], steps), strategy=decoder, beam_width=beam_width,
                                       top_paths=1, mask_index=len(charset))
    if decoder == "greedy":
        confidence = tf.reduce_prod(tf.reduce_max(probs, -1), -1)
    else:
        confidence = tf.exp(scores[:, 0])
    # ctc_decode pads with -1 (== PAD) and, for beam search, may return fewer than T columns.
    ids = tf.cast(ids[0], tf.int32)
    ids = tf.pad(ids, [[0, 0], [0, steps - tf.shape(ids)[1]]], constant_values=PAD)
    return ids, confidence


def ids_to_text(ids, charset):
    """Label ids [B, L] (PAD ignored) -> UTF-8 strings [B]."""
    chars = tf.constant(list(charset))
    valid = ids >= 0
    pieces = tf.where(valid, tf.gather(chars, tf.where(valid, ids, 0)), "")
    return tf.strings.reduce_join(pieces, axis=-1)


def predict_text(model, images, charset, decoder="greedy"):
    """Float images [B, H, W, C] -> (list of str, numpy confidences) with the Keras model."""
    ids, confidence = decode(model(images, training=False), charset, decoder)
    return [t.decode() for t in ids_to_text(ids, charset).numpy()], confidence.numpy()

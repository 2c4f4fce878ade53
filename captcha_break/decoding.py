"""Model output -> text in numpy, exactly as trainer/decoding.py does it (greedy decoders), keyed by reader.json's
`output.kind`:

- "positions": one step per character, classes = the charset; each step's most probable character;
- "positions_end": one step per position up to the longest label, classes = the charset + "no character here"
  (the last class), which reads as nothing wherever it stands;
- "ctc": classes = the charset + blank (the last class); the most probable class at every step, repeats merged,
  then blanks dropped (tf.nn.ctc_greedy_decoder's rule, which Keras' ctc_decode calls).

Confidence is the product of the top probability at every step (blanks and "no character" steps included), in
float32 as the SavedModel computes it.
"""
import numpy as np

KINDS = ("positions", "positions_end", "ctc")
DECODERS = ("greedy",)  # the SavedModel's beam search is not repeated here


def decode(probs, charset, kind):
    """Probabilities [B, T, K] -> (list of B strings, float32 confidences [B])."""
    probs = np.asarray(probs, np.float32)
    confidence = np.prod(np.max(probs, axis=-1), axis=-1, dtype=np.float32)
    extra = len(charset)  # the blank (ctc) or the "no character" class (positions_end)
    if kind == "ctc":  # Keras decodes the log of the probabilities floored at 1e-12: argmax over the same values
        ids = np.argmax(np.log(np.maximum(probs, np.float32(1e-12))), axis=-1)
    else:
        ids = np.argmax(probs, axis=-1)
    texts = []
    for row in ids.tolist():
        if kind == "ctc":
            row = [i for t, i in enumerate(row) if i != extra and (t == 0 or i != row[t - 1])]
        elif kind == "positions_end":
            row = [i for i in row if i != extra]
        texts.append("".join(charset[i] for i in row))
    return texts, confidence

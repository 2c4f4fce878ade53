"""Captcha metrics from true and predicted strings (pure Python, no TensorFlow).

- captcha_acc: fraction of captchas whose prediction equals the label exactly.
- char_acc: position-wise over the true label: true[i] == pred[i], a missing predicted character counts as
  wrong and extra predicted characters are ignored (they already make the captcha wrong); correct characters
  / total true characters.
- position_acc[i]: char_acc at position i, over the labels that have a position i.
- length_acc: captcha_acc per true label length, [{"length", "num_examples", "captcha_acc"}] by length.
- confusions: (true char, predicted char) counts at wrong positions, most frequent first; "" = missing.
"""
import collections


def compute_metrics(true_texts, pred_texts, top_confusions=20):
    """Returns a JSON-ready dict of the metrics above for equal-length lists of strings."""
    if len(true_texts) != len(pred_texts):
        raise ValueError(f"{len(true_texts)} labels but {len(pred_texts)} predictions")
    positions = collections.Counter()
    correct_at = collections.Counter()
    confusions = collections.Counter()
    examples_of_length = collections.Counter()
    exact_of_length = collections.Counter()
    for true, pred in zip(true_texts, pred_texts):
        examples_of_length[len(true)] += 1
        exact_of_length[len(true)] += true == pred
        for i, char in enumerate(true):
            got = pred[i] if i < len(pred) else ""
            positions[i] += 1
            if got == char:
                correct_at[i] += 1
            else:
                confusions[(char, got)] += 1
    total_chars = sum(positions.values())
    return {
        "num_examples": len(true_texts),
        "captcha_acc": sum(t == p for t, p in zip(true_texts, pred_texts)) / max(len(true_texts), 1),
        "char_acc": sum(correct_at.values()) / max(total_chars, 1),
        "position_acc": [correct_at[i] / positions[i] for i in sorted(positions)],
        "length_acc": [{"length": n, "num_examples": examples_of_length[n],
                        "captcha_acc": exact_of_length[n] / examples_of_length[n]} for n in sorted(examples_of_length)],
        "confusions": [{"true": t, "pred": p, "count": n} for (t, p), n in confusions.most_common(top_confusions)],
    }


def format_table(metrics):
    """The metrics as a plain-text table for the terminal."""
    unfinished = metrics.get("run") == "unfinished"
    lines = ["run             unfinished: best.keras so far, not the run's result"] if unfinished else []
    lines += [f"{'examples':<16}{metrics['num_examples']}",
             f"{'captcha acc':<16}{metrics['captcha_acc']:.4f}",
             f"{'char acc':<16}{metrics['char_acc']:.4f}"]
    lines += [f"{f'position {i}':<16}{acc:.4f}" for i, acc in enumerate(metrics["position_acc"])]
    lines += [f"{'length %d acc' % r['length']:<16}{r['captcha_acc']:.4f} ({r['num_examples']} examples)"
              for r in metrics["length_acc"]]
    if metrics["confusions"]:
        lines.append("confusions (true -> predicted: count)")
        lines += [f"  {c['true']!r} -> {repr(c['pred']) if c['pred'] else '(missing)'}: {c['count']}"
                  for c in metrics["confusions"]]
    return "\n".join(lines)

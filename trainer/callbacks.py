"""Keras callbacks for training: captcha metrics on the validation split, plus the standard set."""
import csv
import os

import keras

from trainer import decoding, metrics


class CaptchaMetrics(keras.callbacks.Callback):
    """Adds val_loss, val_captcha_acc and val_char_acc (see trainer.metrics) to the epoch logs.

    Must come before the callbacks that read those keys (checkpoint, early stopping, loggers).
    """

    def __init__(self, dataset, charset, decoder="greedy"):
        super().__init__()
        self.dataset = dataset
        self.charset = charset
        self.decoder = decoder

    def on_epoch_end(self, epoch, logs=None):
        true_texts, pred_texts, loss_sum = [], [], 0.0
        for images, labels in self.dataset:
            probs = self.model.predict_on_batch(images)
            loss_sum += float(self.model.loss(labels, probs)) * len(labels)
            ids, _ = decoding.decode(probs, self.charset, self.decoder)
            pred_texts += [t.decode() for t in decoding.ids_to_text(ids, self.charset).numpy()]
            true_texts += [t.decode() for t in decoding.ids_to_text(labels, self.charset).numpy()]
        result = metrics.compute_metrics(true_texts, pred_texts)
        logs["val_loss"] = loss_sum / len(true_texts)
        logs["val_captcha_acc"] = result["captcha_acc"]
        logs["val_char_acc"] = result["char_acc"]


def best_logged(csv_path, key):
    """The largest value of `key` in a CSVLogger file, or None if there is none."""
    if not os.path.exists(csv_path):
        return None
    with open(csv_path, newline="") as f:
        values = [float(row[key]) for row in csv.DictReader(f) if row.get(key)]
    return max(values) if values else None


def standard_callbacks(model_dir, val_metrics, patience, lr_patience):
    """val_metrics first, then checkpoint of the best val_captcha_acc, early stopping, LR decay, logs, backup.

    A run killed mid-training and started again with the same model_dir resumes from its last finished epoch
    (BackupAndRestore), appends to the CSV log and only replaces best.keras with a better model.
    """
    backup_dir = os.path.join(model_dir, "backup")
    csv_path = os.path.join(model_dir, "log.csv")
    resuming = os.path.isdir(backup_dir)
    return [
        val_metrics,
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.ModelCheckpoint(
            os.path.join(model_dir, "best.keras"), monitor="val_captcha_acc", mode="max", save_best_only=True,
            initial_value_threshold=best_logged(csv_path, "val_captcha_acc") if resuming else None),
        keras.callbacks.EarlyStopping(monitor="val_captcha_acc", mode="max", patience=patience),
        # Replaces the seed's manual second stage at 1e-4: divide by 10 when val_loss stalls.
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", mode="min", factor=0.1, patience=lr_patience,
                                          min_lr=1e-6),
        keras.callbacks.CSVLogger(csv_path, append=resuming),
        keras.callbacks.TensorBoard(os.path.join(model_dir, "tensorboard")),
        keras.callbacks.BackupAndRestore(backup_dir),
    ]


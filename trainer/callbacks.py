"""Keras callbacks for training: captcha metrics on the validation split, plus the standard set."""
import csv
import io
import json
import os
import time

import keras
import numpy as np
import tensorflow as tf

from trainer import decoding, metrics, plots, rundir

_CHUNK = 256  # validation examples per loss and decoding call
GRID_SAMPLE = 256  # the validation images the TensorBoard grid picks its mispredictions from
GRID_ERRORS = 16  # at most this many images in the grid


class CaptchaMetrics(keras.callbacks.Callback):
    """Adds val_loss, val_captcha_acc and val_char_acc (see trainer.metrics) to the epoch logs; with `summary_dir`,
    also writes a grid of the mispredicted images among the first GRID_SAMPLE to TensorBoard there, each epoch.

    Must come before the callbacks that read those keys (checkpoint, early stopping, loggers). The labels (and the
    grid's images) are read once, at the first epoch end: the validation split does not change during a fit.
    """

    def __init__(self, dataset, charset, decoder="greedy", summary_dir=None):
        super().__init__()
        self.dataset = dataset
        self.charset = charset
        self.decoder = decoder
        self.summary_dir = summary_dir
        self._labels = self._sample_images = self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        # predict, not predict_on_batch per batch: under a MirroredStrategy, Keras 3.15's predict_on_batch runs every
        # replica on the whole batch and returns all their outputs.
        probs = self.model.predict(self.dataset.map(lambda images, labels: images), verbose=0)
        if self._labels is None:
            self._read_labels()
        true_texts, pred_texts, loss_sum = [], [], 0.0
        for start in range(0, len(self._labels), _CHUNK):
            chunk_probs, chunk_labels = probs[start:start + _CHUNK], self._labels[start:start + _CHUNK]
            loss = keras.ops.convert_to_numpy(self.model.loss(chunk_labels, chunk_probs))
            loss_sum += float(loss) * len(chunk_labels)
            ids, _ = decoding.decode(chunk_probs, self.charset, self.decoder,
                                     kind=decoding.output_kind(self.model, self.charset))
            pred_texts += decoding.ids_to_texts(ids, self.charset)
            true_texts += decoding.ids_to_texts(chunk_labels, self.charset)
        result = metrics.compute_metrics(true_texts, pred_texts)
        logs["val_loss"] = loss_sum / len(true_texts)
        logs["val_captcha_acc"] = result["captcha_acc"]
        logs["val_char_acc"] = result["char_acc"]
        if self.summary_dir:
            self._write_error_grid(epoch, true_texts[:GRID_SAMPLE], pred_texts[:GRID_SAMPLE])

    def _read_labels(self):
        labels, images = [], []
        for batch_images, batch_labels in self.dataset.as_numpy_iterator():
            labels.append(batch_labels)
            if self.summary_dir and sum(map(len, images)) < GRID_SAMPLE:
                images.append(batch_images)
        self._labels = np.concatenate(labels)
        self._sample_images = np.concatenate(images)[:GRID_SAMPLE] if images else None

    def _write_error_grid(self, epoch, true_texts, pred_texts):
        wrong = [i for i, (true, pred) in enumerate(zip(true_texts, pred_texts)) if true != pred][:GRID_ERRORS]
        png = plots.errors_png(self._sample_images[wrong], [true_texts[i] for i in wrong],
                               [pred_texts[i] for i in wrong])
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.summary_dir)
        with self._writer.as_default():
            tf.summary.image(f"mispredictions (first {GRID_SAMPLE} val images)", tf.io.decode_png(png)[None],
                             step=epoch)
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class RestorePatience(keras.callbacks.Callback):
    """Gives EarlyStopping / ReduceLROnPlateau callbacks the best and wait they had before a resume.

    Keras resets both at the start of every fit, so a resumed run would wait `patience` epochs anew; at its first
    epoch this replays the CSV log of the epochs before it (the last row of an epoch logged twice). A fresh run
    starts at epoch 0 and replays nothing.
    """

    def __init__(self, csv_path, callbacks):
        super().__init__()
        self.csv_path = csv_path
        self.callbacks = callbacks
        self._replayed = False

    def on_epoch_begin(self, epoch, logs=None):
        if self._replayed:
            return
        self._replayed = True
        rows = {int(row["epoch"]): row for row in _read_log(self.csv_path)}
        for callback in self.callbacks:
            values = [float(rows[e][callback.monitor]) for e in sorted(rows) if e < epoch]
            reset_after = callback.patience if isinstance(callback, keras.callbacks.ReduceLROnPlateau) else None
            # abs: Keras flips min_delta's sign for mode "min" on first use.
            callback.best, callback.wait = plateau_state(values, callback.mode, abs(callback.min_delta), reset_after)


def plateau_state(values, mode, min_delta=0.0, reset_after=None):
    """(best, wait) of a Keras EarlyStopping or ReduceLROnPlateau (no cooldown) that saw `values`, one per epoch.

    A value improves on the best if it is higher (mode "max") or lower ("min") by more than min_delta. wait counts
    the epochs since the last improvement, restarting from 0 each time it reaches `reset_after`
    (ReduceLROnPlateau's patience: it resets wait when it cuts the learning rate).
    """
    best, wait = None, 0
    for value in values:
        if best is None or (value - min_delta > best if mode == "max" else value + min_delta < best):
            best, wait = value, 0
        else:
            wait += 1
            if reset_after and wait >= reset_after:
                wait = 0
    return best, wait


def _read_log(csv_path):
    """The rows of a CSVLogger file as dicts of strings; none if it does not exist."""
    if not tf.io.gfile.exists(csv_path):
        return []
    with tf.io.gfile.GFile(csv_path) as f:
        rows = list(csv.DictReader(io.StringIO(f.read())))
    return [row for row in rows if None not in row.values()]  # not a row cut short by a full disk or a kill


def best_logged(csv_path, key):
    """The largest value of `key` in a CSVLogger file, or None if there is none."""
    values = [float(row[key]) for row in _read_log(csv_path) if row.get(key)]
    return max(values) if values else None


class TrainThroughput(keras.callbacks.Callback):
    """Images/s over the train steps of a fit, input included, leaving out its first step (graph tracing)."""

    def __init__(self, batch_size):
        super().__init__()
        self.batch_size = batch_size
        self.steps = -1  # the first step is not counted
        self.seconds = 0.0
        self._started = None

    def on_train_batch_begin(self, batch, logs=None):
        self._started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):  # defining it makes Keras call it synchronously
        if self.steps >= 0:
            self.seconds += time.perf_counter() - self._started
        self.steps += 1

    def images_per_second(self):
        """None when fit ran a single step."""
        return self.steps * self.batch_size / self.seconds if self.steps > 0 else None


class StepRate(keras.callbacks.Callback):
    """Adds steps_per_second to the epoch logs (so to log.csv and TensorBoard): the epoch's train steps over the time
    from its start to its last step's end (the first epoch's includes graph tracing), validation left out."""

    def on_epoch_begin(self, epoch, logs=None):
        self._started, self._steps, self._last = time.perf_counter(), 0, None

    def on_train_batch_end(self, batch, logs=None):
        self._steps += 1
        self._last = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if self._steps:
            logs["steps_per_second"] = self._steps / max(self._last - self._started, 1e-9)


class TimeBudget(keras.callbacks.Callback):
    """Stops training once `seconds` of training have passed; the epoch in progress is still validated.

    With `backup_dir` (BackupAndRestore's), the seconds spent are saved there at each epoch end and counted again when
    a killed run resumes, so it trains for what is left of the budget, not a new one.
    """

    def __init__(self, seconds, backup_dir=None):
        super().__init__()
        self.seconds = seconds
        self.state_path = backup_dir and os.path.join(backup_dir, "time_budget.json")
        self._started = None

    def on_train_begin(self, logs=None):
        self._before = 0.0  # seconds spent by the run this fit resumes
        if self.state_path and tf.io.gfile.exists(self.state_path):
            with tf.io.gfile.GFile(self.state_path) as f:
                self._before = json.load(f)["elapsed_seconds"]
        self._started = time.monotonic()

    def elapsed_fraction(self):
        return (self._before + time.monotonic() - self._started) / self.seconds

    def on_train_batch_end(self, batch, logs=None):
        if self.elapsed_fraction() >= 1:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self.state_path:  # a kill mid-write leaves the previous epoch's
            tf.io.gfile.makedirs(os.path.dirname(self.state_path))
            elapsed = self.elapsed_fraction() * self.seconds
            rundir.write_atomic(self.state_path, json.dumps({"elapsed_seconds": elapsed}))


def cosine_decay(peak, steps, warmup=0.0):
    """Keras CosineDecay over `steps`: a linear ramp from 0 to `peak` over the first `warmup` fraction, then cosine
    decay to 0 over the rest (steps may be fractional)."""
    return keras.optimizers.schedules.CosineDecay(0.0, steps * (1 - warmup), warmup_target=peak,
                                                  warmup_steps=steps * warmup)


class CosineSchedule(keras.callbacks.Callback):
    """Sets the learning rate before every step to cosine_decay at training's progress: the optimizer's step count
    out of `total_steps` (BackupAndRestore restores it, so a resumed run goes on where it stopped), or the fraction
    of `budget` spent when given (which is why this is a callback: a schedule on the optimizer sees only steps)."""

    def __init__(self, peak, total_steps, budget=None, warmup=0.0):
        super().__init__()
        self.budget = budget
        self.schedule = cosine_decay(peak, 1.0 if budget else total_steps, warmup)

    def on_train_batch_begin(self, batch, logs=None):
        if keras.backend.backend() == "jax":  # JAX's fit keeps the variables in its own state between epochs
            self.model.jax_state_sync()  # so the step count is current and the new rate reaches the next step
        progress = self.budget.elapsed_fraction() if self.budget else self.model.optimizer.iterations
        self.model.optimizer.learning_rate.assign(self.schedule(progress))

    def on_epoch_end(self, epoch, logs=None):
        logs["learning_rate"] = float(self.model.optimizer.learning_rate)  # as ReduceLROnPlateau logs it


class BestCheckpoint(keras.callbacks.Callback):
    """Saves the model to `path` at every epoch end whose `monitor` (higher is better) is at least the best so far
    (`initial_value` on a resume), then drops the files derived from the best.keras it replaced (trainer.evaluate's).

    The latest of ties wins: on a small val split most epochs tie (96 images give steps of ~1%), and the later model,
    trained longer at a lower learning rate, is the better bet. Written through a temporary file renamed over `path`,
    so a full disk or a kill never leaves a truncated best.keras. Hand-written: Keras' ModelCheckpoint writes in place
    and keeps the first of ties.
    """

    def __init__(self, path, monitor, initial_value=None, saved_model=None):
        super().__init__()
        self.path, self.monitor, self.best, self.saved_model = path, monitor, initial_value, saved_model

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or (self.best is not None and value < self.best):
            return
        self.best = value
        with rundir.atomic_path(self.path) as temporary:
            (self.model if self.saved_model is None else self.saved_model).save(temporary)
        rundir.drop_derived(os.path.dirname(self.path))


class BackupAndRestore(keras.callbacks.BackupAndRestore):
    """Keras' BackupAndRestore, writing the weights and then the epoch through temporary names, so a full disk or a
    kill during a save leaves the last complete backup to resume from; backup/ stays after training, until the run
    is finished (rundir.mark_finished). Overrides Keras 3's private `_save_model` (its test guards it)."""

    def __init__(self, backup_dir):
        super().__init__(backup_dir, delete_checkpoint=False)

    def _save_model(self):
        tf.io.gfile.makedirs(self.backup_dir)
        with rundir.atomic_path(self._weights_path) as temporary:
            self.model.save_weights(temporary, overwrite=True)
        rundir.write_atomic(self._training_metadata_path,
                            json.dumps({"epoch": self._current_epoch, "batch": self._last_batch_seen}))


class CSVLogger(keras.callbacks.CSVLogger):
    """Keras's CSVLogger, able to close its log on any filesystem: Keras 3.15 opens a gs:// (or other remote) path
    with tf.io.gfile.GFile, then asks the file for `closed`, which GFile lacks."""

    def on_train_end(self, logs=None):
        if self.csv_file:
            self.csv_file.close()
        self.csv_file = self.writer = None


def standard_callbacks(model_dir, val_metrics, patience, lr_patience, lr_schedule=None, saved_model=None):
    """val_metrics first, then checkpoint of the best val_captcha_acc, early stopping, LR decay, step rate, logs,
    backup.

    `lr_schedule`: a callback that sets the learning rate (CosineSchedule) in place of ReduceLROnPlateau.
    `saved_model`: what best.keras holds, where it is not the model trained (trainer.prepared: its reader twin).

    best.keras is the model of the best val_captcha_acc, the latest one among ties (BestCheckpoint).
    A run killed mid-training and started again with the same model_dir resumes from its last finished epoch
    (BackupAndRestore), appends to the CSV log, only replaces best.keras with a model as good or better and keeps
    counting the epochs without improvement from where it stopped (RestorePatience).
    """
    backup_dir = os.path.join(model_dir, rundir.BACKUP_DIR)
    csv_path = os.path.join(model_dir, "log.csv")
    resuming = tf.io.gfile.isdir(backup_dir)
    early_stopping = keras.callbacks.EarlyStopping(monitor="val_captcha_acc", mode="max", patience=patience)
    # Replaces the seed's manual second stage at 1e-4: divide by 10 when val_loss stalls.
    reduce_lr = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", mode="min", factor=0.1, patience=lr_patience,
                                                  min_lr=1e-6)
    return [
        val_metrics,
        keras.callbacks.TerminateOnNaN(),
        BestCheckpoint(os.path.join(model_dir, rundir.BEST_MODEL), "val_captcha_acc",
                       best_logged(csv_path, "val_captcha_acc") if resuming else None, saved_model),
        RestorePatience(csv_path, [early_stopping] if lr_schedule else [early_stopping, reduce_lr]),
        early_stopping,
        lr_schedule or reduce_lr,
        StepRate(),
        CSVLogger(csv_path, append=resuming),
        keras.callbacks.TensorBoard(os.path.join(model_dir, "tensorboard")),
        BackupAndRestore(backup_dir),
    ]


"""trainer.callbacks: a resumed run's early stopping and LR decay go on counting like an uninterrupted one."""
import csv
import os

import keras
import pytest

from trainer import callbacks

# Epochs 0-6. val_captcha_acc: best 0.5 at epoch 4, then 2 epochs without a higher value.
# val_loss, lr_patience 2: best 1.5 at epoch 1; epochs 2, 3 (1.49995 is not lower by min_delta 1e-4) -> LR cut and
# wait back to 0; epoch 4 waits 1; 1.2 at epoch 5 is the best; epoch 6 waits 1.
LOGGED = [{"val_captcha_acc": acc, "val_loss": loss} for acc, loss in
          zip([0.1, 0.3, 0.3, 0.2, 0.5, 0.5, 0.4], [2.0, 1.5, 1.5, 1.49995, 1.6, 1.2, 1.3])]


def _patience_callbacks(model_dir, model):
    """The EarlyStopping, ReduceLROnPlateau and RestorePatience of standard_callbacks, attached to `model`."""
    found = {type(c): c for c in callbacks.standard_callbacks(str(model_dir), keras.callbacks.Callback(), 3, 2)}
    chosen = [found[keras.callbacks.EarlyStopping], found[keras.callbacks.ReduceLROnPlateau],
              found[callbacks.RestorePatience]]
    for callback in chosen:
        callback.set_model(model)
    return chosen


def _model():
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(1e-3), "mse")
    return model


def test_plateau_state_hand_computed():
    assert callbacks.plateau_state([], "max") == (None, 0)
    assert callbacks.plateau_state([0.1, 0.3, 0.3, 0.2], "max") == (0.3, 2)
    assert callbacks.plateau_state([2.0, 1.5, 1.5, 1.49995, 1.6], "min", 1e-4, reset_after=2) == (1.5, 1)
    assert callbacks.plateau_state([2.0, 1.5, 1.5, 1.49995, 1.6], "min", 1e-4) == (1.5, 3)


def test_resumed_patience_equals_the_uninterrupted_callbacks(tmp_path):
    model = _model()
    early_stopping, reduce_lr, _ = _patience_callbacks(tmp_path / "run", model)
    for callback in (early_stopping, reduce_lr):
        callback.on_train_begin()
    for epoch, logs in enumerate(LOGGED):
        early_stopping.on_epoch_end(epoch, dict(logs))
        reduce_lr.on_epoch_end(epoch, dict(logs))
    assert (early_stopping.best, early_stopping.wait) == (0.5, 2)
    assert (reduce_lr.best, reduce_lr.wait) == (1.2, 1)
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-4)  # one cut, at epoch 3

    # The same epochs in a log, killed after logging epoch 7 but before its backup: resumes at epoch 7.
    model_dir = tmp_path / "resumed"
    os.makedirs(model_dir / "backup")
    rows = [{"epoch": e, **logs} for e, logs in enumerate(LOGGED)]
    rows += [{"epoch": 5, **LOGGED[5]}, {"epoch": 7, "val_captcha_acc": 0.9, "val_loss": 0.1}]
    with open(model_dir / "log.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, ["epoch", "val_captcha_acc", "val_loss"])
        writer.writeheader()
        writer.writerows(rows)
    resumed = _patience_callbacks(model_dir, _model())
    for callback in resumed:
        callback.on_train_begin()
    resumed[2].on_epoch_begin(len(LOGGED))
    assert (resumed[0].best, resumed[0].wait) == (early_stopping.best, early_stopping.wait)
    assert (resumed[1].best, resumed[1].wait) == (reduce_lr.best, reduce_lr.wait)

    # One more stalled epoch: with patience 3 both stop; lr_patience 2 cuts the learning rate in both.
    for model_callbacks in ((early_stopping, reduce_lr), resumed[:2]):
        for callback in model_callbacks:
            callback.on_epoch_end(len(LOGGED), {"val_captcha_acc": 0.4, "val_loss": 1.3})
        assert model_callbacks[0].model.stop_training
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-5)
    assert float(resumed[1].model.optimizer.learning_rate) == pytest.approx(1e-4)  # its own model started at 1e-3


def test_fresh_run_starts_counting_from_zero(tmp_path):
    early_stopping, reduce_lr, restore = _patience_callbacks(tmp_path, _model())
    for callback in (early_stopping, reduce_lr):
        callback.on_train_begin()
    restore.on_epoch_begin(0)
    assert (early_stopping.best, early_stopping.wait, reduce_lr.best, reduce_lr.wait) == (None, 0, None, 0)


def _tiny_ctc_run(tmp_path, epochs):
    """A ctc_lite model fitted `epochs` one-step epochs on 12 random 32x64 images, validated by CaptchaMetrics with a
    TensorBoard folder and StepRate; returns (CaptchaMetrics, History)."""
    import numpy as np
    import tensorflow as tf

    from trainer import train
    from trainer.models import build

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (12, 32, 64, 3), dtype=np.uint8)
    labels = rng.integers(0, 3, (12, 2)).astype(np.int32)
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4)
    model = train.compile_model(build("ctc_lite", (32, 64, 3), 3, [2]), "abc", 1e-3)
    metrics = callbacks.CaptchaMetrics(dataset, "abc", summary_dir=str(tmp_path / "validation"))
    history = model.fit(dataset.repeat(), epochs=epochs, steps_per_epoch=1, verbose=0,
                        callbacks=[metrics, callbacks.StepRate()])
    return metrics, history


def test_validation_reads_labels_once_and_logs_the_error_grid_and_step_rate(tmp_path, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    reads = []
    read_labels = callbacks.CaptchaMetrics._read_labels
    monkeypatch.setattr(callbacks.CaptchaMetrics, "_read_labels", lambda self: reads.append(1) or read_labels(self))
    metrics, history = _tiny_ctc_run(tmp_path, epochs=2)
    assert len(reads) == 1 and len(metrics._labels) == 12
    assert all(rate > 0 for rate in history.history["steps_per_second"])
    assert 0 <= history.history["val_char_acc"][-1] <= 1
    events = EventAccumulator(str(tmp_path / "validation"), size_guidance={"tensors": 0})
    events.Reload()
    tag = f"mispredictions (first {callbacks.GRID_SAMPLE} val images)"
    assert tag in events.Tags()["tensors"]
    steps = [event.step for event in events.Tensors(tag)]
    assert steps == [0, 1]  # one image per epoch
    width, height, png = events.Tensors(tag)[-1].tensor_proto.string_val
    assert png.startswith(b"\x89PNG") and int(width) > 0 and int(height) > 0


def test_standard_callbacks_log_the_step_rate_before_the_loggers(tmp_path):
    names = [type(c).__name__ for c in callbacks.standard_callbacks(str(tmp_path), keras.callbacks.Callback(), 3, 2)]
    assert names.index("StepRate") < names.index("CSVLogger") < names.index("TensorBoard")


def test_best_checkpoint_keeps_the_latest_of_tied_epochs(tmp_path):
    """Keras's ModelCheckpoint keeps the first of equal val accuracies; ours the last (and never a worse one), each
    through a temporary file, dropping trainer.evaluate's files of the model it replaces."""
    model = _model()
    checkpoint = [c for c in callbacks.standard_callbacks(str(tmp_path), keras.callbacks.Callback(), 3, 2)
                  if isinstance(c, callbacks.BestCheckpoint)][0]
    checkpoint.set_model(model)
    saved = []
    for epoch, logs in enumerate(LOGGED):
        (tmp_path / "eval_test.json").write_text("{}")
        checkpoint.on_epoch_end(epoch, logs)
        if not (tmp_path / "eval_test.json").exists():
            saved.append(epoch + 1)
            assert keras.models.load_model(tmp_path / "best.keras").count_params() == model.count_params()
    assert saved == [1, 2, 3, 5, 6]  # numbered from 1, as Keras does: values 0.1, 0.3, 0.3, 0.5, 0.5 saved
    assert sorted(os.listdir(tmp_path)) == ["best.keras", "eval_test.json"], "no temporary file left"

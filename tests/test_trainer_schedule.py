"""The time budget and the cosine learning-rate schedule, on a tiny model fit in memory."""
import keras
import numpy as np
import pytest
import tensorflow as tf
from trainer_fixtures import FakeTime

from trainer import callbacks


def _fit(steps, *extra, epochs=1, seen=None):
    """The learning rate of each step of a fresh tiny model's fit, appended to `seen` (kept if fit raises)."""
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(1.0), loss="mse")
    seen = [] if seen is None else seen
    record = keras.callbacks.LambdaCallback(
        on_train_batch_begin=lambda batch, logs: seen.append(float(model.optimizer.learning_rate)))
    x, y = np.zeros((8, 4), np.float32), np.zeros((8, 1), np.float32)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(8).repeat()
    model.fit(data, steps_per_epoch=steps, epochs=epochs, verbose=0, callbacks=[*extra, record])
    return seen


def test_cosine_decays_from_the_peak_to_zero_over_the_steps():
    seen = _fit(10, callbacks.CosineSchedule(peak=0.01, total_steps=10))
    assert seen[0] == pytest.approx(0.01)
    assert seen[5] == pytest.approx(0.005)
    assert seen[9] == pytest.approx(0.01 * 0.5 * (1 + np.cos(np.pi * 0.9)), rel=1e-5)
    assert all(a > b for a, b in zip(seen, seen[1:]))


def test_warmup_ramps_linearly_to_the_peak_then_decays_over_the_rest():
    seen = _fit(20, callbacks.CosineSchedule(peak=0.01, total_steps=20, warmup=0.25))
    assert seen[:5] == pytest.approx([0.0, 0.002, 0.004, 0.006, 0.008])
    assert seen[5] == pytest.approx(0.01), "the ramp ends at the peak"
    assert seen[5 + 15 // 2] == pytest.approx(0.01 * 0.5 * (1 + np.cos(np.pi * 7 / 15)), rel=1e-5)
    assert all(a > b for a, b in zip(seen[5:], seen[6:])), "cosine decay over the remaining 15 steps"


def test_time_budget_stops_within_the_epoch(monkeypatch):
    clock = FakeTime()
    monkeypatch.setattr(callbacks, "time", clock)
    tick = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: setattr(clock, "now", clock.now + 1))
    seen = _fit(1000, tick, callbacks.TimeBudget(seconds=10.0))
    assert len(seen) == 10, "10 steps of 1 s fill a 10 s budget, far fewer than 1000"


def test_cosine_over_a_time_budget_follows_the_clock():
    budget = callbacks.TimeBudget(seconds=100.0)
    schedule = callbacks.CosineSchedule(peak=0.01, total_steps=1, budget=budget)
    seen = _fit(3, budget, schedule)
    assert seen == pytest.approx([0.01] * 3, rel=1e-3), "a few ms of a 100 s budget: still at the peak"


def test_cosine_over_steps_resumes_from_the_restored_step_count(tmp_path):
    """Killed after epoch 1 of 3 and resumed, BackupAndRestore restores the optimizer's step count and the learning
    rate goes on as in the uninterrupted run, instead of warming up again."""
    def schedule():
        return callbacks.CosineSchedule(peak=0.01, total_steps=12, warmup=0.25)

    def kill(epoch, logs):
        raise RuntimeError("killed")

    uninterrupted = _fit(4, schedule(), epochs=3)
    seen = []
    with pytest.raises(RuntimeError, match="killed"):
        _fit(4, schedule(), keras.callbacks.BackupAndRestore(str(tmp_path)), keras.callbacks.LambdaCallback(
            on_epoch_end=kill), epochs=3, seen=seen)
    assert len(seen) == 4
    _fit(4, schedule(), keras.callbacks.BackupAndRestore(str(tmp_path)), epochs=3, seen=seen)
    assert seen == pytest.approx(uninterrupted, abs=1e-9)
    assert uninterrupted[:4] == pytest.approx([0.0, 0.01 / 3, 0.02 / 3, 0.01]), "warm-up over 3 of the 12 steps"

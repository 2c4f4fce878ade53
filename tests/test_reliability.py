"""Faults a user meets: full disks, two writers at once, unfinished runs, hostile files, Ctrl-C.

Each test injects its fault (a fake that raises ENOSPC at the Nth write, a lock held by another process, a FIFO, a
signal) and checks the one-line error, the exit status, and that no data already written is lost.
"""
import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time

import keras
import pytest
from apache_beam.io.filesystems import FileSystems
from PIL import Image

import sweepfile
from captcha_break.command import INTERRUPTED
from pipeline import dataset, ingest, storage, sweep
from pipeline import main as pipeline_main
from safeio import disk, locks
from trainer import data, rundir, scoring, serving, train
from trainer.errors import UserError, exit_on_user_error
from trainer_fixtures import copy_dataset, fixed_dataset  # noqa: F401,F811 (a fixture)

TINY = ["--train_size=40", "--val_size=4", "--test_size=4", "--num_shards=2",
        "--direct_running_mode=in_memory", "--direct_num_workers=1"]
FULL = OSError(errno.ENOSPC, "No space left on device")


def _config(data_dir, model_dir, **kwargs):
    return train.TrainConfig(model="ctc_lite", data_dir=data_dir, model_dir=str(model_dir), batch_size=8,
                             **{"epochs": 2, "steps_per_epoch": 1, "seed": 0, **kwargs})


def _error_lines(capsys):
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]


# 1. A full disk during a render.

def test_render_that_cannot_fit_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(dataset.disk, "free_bytes", lambda folder: 10_000)
    assert pipeline_main.main([f"--output_dir={tmp_path}", *TINY]) == 1
    [line] = _error_lines(capsys)
    assert f"not enough space for the dataset in {tmp_path}" in line and "MB free" in line
    assert os.listdir(tmp_path) == [storage.LOCK_FILE]


def test_disk_full_during_a_render_is_one_line_leaves_no_temporary_and_a_rerun_completes(tmp_path, monkeypatch,
                                                                                       capsys):
    create, written = FileSystems.create, [0]

    class FillingFile:  # the disk fills after 60 kB of shard bytes
        def __init__(self, path):
            self._file = create(path)

        def write(self, data):
            written[0] += len(data)
            if written[0] > 60_000:
                raise FULL
            self._file.write(data)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._file.close()

    monkeypatch.setattr(storage.FileSystems, "create", FillingFile)
    assert pipeline_main.main([f"--output_dir={tmp_path}", *TINY]) == 1
    [line] = _error_lines(capsys)
    assert f"no space left on the disk while writing {tmp_path}" in line and "run the same command again" in line
    assert not [f for f in os.listdir(tmp_path) if "incomplete" in f or f == "spec.json"]
    monkeypatch.setattr(storage.FileSystems, "create", create)
    assert pipeline_main.main([f"--output_dir={tmp_path}", *TINY]) == 0
    assert json.loads((tmp_path / "spec.json").read_text())["splits"]["train"]["num_records"] == 40


def test_full_disk_is_told_apart_from_other_errors():
    assert disk.is_full(FULL)
    assert disk.is_full(RuntimeError("OSError: [Errno 28] No space left on device [while running 'Write']"))
    try:
        try:
            raise FULL
        except OSError as e:
            raise ValueError("saving failed") from e
    except ValueError as wrapped:
        assert disk.is_full(wrapped)
    assert not disk.is_full(OSError(errno.EACCES, "Permission denied"))


# 2. A full disk during training.

def test_disk_full_while_saving_a_checkpoint_is_one_error_and_the_rerun_resumes(fixed_dataset, tmp_path,
                                                                                monkeypatch):
    model_dir = tmp_path / "model"
    save, calls = keras.Model.save, [0]

    def save_then_fill(self, path, *args, **kwargs):  # the second best.keras meets a full disk half-way
        calls[0] += 1
        if calls[0] == 2:
            with open(path, "wb") as f:
                f.write(b"PK half a zip")
            raise FULL
        return save(self, path, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "save", save_then_fill)
    config = _config(fixed_dataset, model_dir, learning_rate=1e-9)  # every epoch ties: each one saves
    with pytest.raises(UserError, match=f"no space left on the disk of --model_dir {model_dir}.*run the same "
                                        "command again to resume"):
        train.train_and_evaluate(config)
    assert not rundir.is_finished(model_dir) and rundir.is_interrupted(model_dir)
    assert not [f for f in os.listdir(model_dir) if f.startswith(rundir.TEMPORARY_PREFIX)]
    rundir.load_model(str(model_dir))  # the best.keras of epoch 1 is whole
    monkeypatch.setattr(keras.Model, "save", save)
    assert train.train_and_evaluate(config).epoch == [1]  # resumed after its last complete backup
    assert rundir.is_finished(model_dir)


def test_disk_full_during_the_export_is_not_a_finished_run_and_the_rerun_only_exports(fixed_dataset, tmp_path,
                                                                                       monkeypatch, capsys):
    model_dir = tmp_path / "model"

    def fill(*args, **kwargs):
        raise FULL

    export = train.export.export_saved_model
    monkeypatch.setattr(train.export, "export_saved_model", fill)
    with pytest.raises(UserError, match="no space left"):
        train.train_and_evaluate(_config(fixed_dataset, model_dir))
    assert not rundir.is_finished(model_dir) and rundir.training_ended(model_dir)
    assert not os.path.exists(model_dir / "saved_model")
    monkeypatch.setattr(train.export, "export_saved_model", export)
    assert train.train_and_evaluate(_config(fixed_dataset, model_dir)).epoch == []  # nothing trained again
    assert "training had ended; writing its curves and SavedModel" in capsys.readouterr().out
    assert rundir.is_finished(model_dir) and os.path.exists(model_dir / "saved_model" / "saved_model.pb")


def test_atomic_path_leaves_the_old_file_and_no_temporary_when_the_write_fails(tmp_path):
    target = tmp_path / "config.json"
    target.write_text("old")
    with pytest.raises(OSError):
        with rundir.atomic_path(str(target)) as temporary:
            open(temporary, "w").write("half")
            raise FULL
    assert os.listdir(tmp_path) == ["config.json"] and target.read_text() == "old"
    (tmp_path / "saved_model").mkdir()
    with rundir.atomic_path(str(tmp_path / "saved_model")) as temporary:  # a folder replaces a folder
        os.mkdir(temporary)
        open(os.path.join(temporary, "new"), "w").close()
    assert sorted(os.listdir(tmp_path)) == ["config.json", "saved_model"]
    assert os.listdir(tmp_path / "saved_model") == ["new"]


# 3. Two trainings into one model_dir, and the lock of a killed one.

HOLD_LOCK = """
import sys, time
from safeio import locks
with locks.hold(sys.argv[1], sys.argv[2], shared=sys.argv[3] == "shared"):
    print("held", flush=True)
    time.sleep(60)
"""


def _holder(folder, name, shared=False):
    """A process of its own holding the lock; returns it once it holds it."""
    process = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(folder), name, "shared" if shared else "alone"],
                               stdout=subprocess.PIPE, text=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert process.stdout.readline() == "held\n"
    return process


def test_second_training_into_a_model_dir_refuses_naming_the_holder_and_a_killed_one_blocks_nothing(
        fixed_dataset, tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    holder = _holder(model_dir, locks.RUN_LOCK)
    try:
        with pytest.raises(UserError, match=f"--model_dir {model_dir} is in use by another training "
                                            f"\\(process {holder.pid} holds .trainer.lock\\)"):
            train.train_and_evaluate(_config(fixed_dataset, model_dir))
    finally:
        holder.kill()
        holder.wait()
    assert os.listdir(model_dir) == [locks.RUN_LOCK], "the refused run wrote nothing"
    train.train_and_evaluate(_config(fixed_dataset, model_dir, epochs=1))  # the killed holder's lock is gone
    assert rundir.is_finished(model_dir)


# 4. A render into a dataset that a training reads, and the reverse.

def test_render_refuses_to_overwrite_a_dataset_being_read(fixed_dataset, tmp_path, capsys):
    data_dir = copy_dataset(fixed_dataset, tmp_path / "data")
    before = {f: open(os.path.join(data_dir, f), "rb").read() for f in os.listdir(data_dir) if f != storage.LOCK_FILE}
    with data.reading(data_dir), data.reading(data_dir):  # two readers share it
        assert pipeline_main.main([f"--output_dir={data_dir}", "--overwrite", *TINY]) == 1
    [line] = _error_lines(capsys)
    assert f"{data_dir} is being read by a training or an evaluation" in line
    assert before == {f: open(os.path.join(data_dir, f), "rb").read() for f in before}


def test_training_refuses_a_dataset_being_rendered(fixed_dataset, tmp_path):
    data_dir = copy_dataset(fixed_dataset, tmp_path / "data")
    holder = _holder(data_dir, locks.DATASET_LOCK)
    try:
        with pytest.raises(UserError, match=f"{data_dir} is being written by a render \\(process {holder.pid}"):
            train.train_and_evaluate(_config(data_dir, tmp_path / "model"))
    finally:
        holder.kill()
        holder.wait()
    assert not os.path.exists(tmp_path / "model")


# 5. evaluate on an unfinished run.

class _KillAfterEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        raise KeyboardInterrupt("killed")


def test_evaluate_says_unfinished_and_the_finished_run_holds_no_stale_metrics(fixed_dataset, tmp_path, caplog):
    model_dir = tmp_path / "model"
    config = _config(fixed_dataset, model_dir, learning_rate=1e-9)
    with pytest.raises(KeyboardInterrupt):
        train.train_and_evaluate(config, extra_callbacks=[_KillAfterEpoch()])
    result = scoring.evaluate(str(model_dir), fixed_dataset, "val", verify_shards=False)
    assert result["run"] == "unfinished" and "unfinished run" in caplog.text
    assert json.loads((model_dir / "eval_val.json").read_text())["run"] == "unfinished"
    train.train_and_evaluate(config)
    assert not os.path.exists(model_dir / "eval_val.json") and not os.path.exists(model_dir / "eval_val_errors.png")
    assert scoring.evaluate(str(model_dir), fixed_dataset, "val", verify_shards=False)["run"] == "finished"


# 6. predict on a decompression bomb.

def test_predict_refuses_an_image_over_the_pixel_limit_before_decoding_it(tmp_path):
    bomb = tmp_path / "bomb.png"
    Image.new("1", (20000, 20000)).save(bomb)  # 49 kB on disk, 400M pixels
    assert os.path.getsize(bomb) < 100_000
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)

    def never_called(images):
        raise AssertionError("decoded")

    results = list(serving.predict_files(never_called, [str(bomb), str(fifo)]))
    assert "400000000 pixels, over the limit of" in results[0][3]
    assert "not a regular file" in results[1][3]


# 7. A charset the fonts cannot draw.

def test_charset_the_font_cannot_draw_is_refused(tmp_path, capsys):
    assert pipeline_main.main([f"--output_dir={tmp_path}", "--charset=AB中文", *TINY]) == 1
    [line] = _error_lines(capsys)
    assert "DroidSansMono.ttf has no glyph for 2 character(s) of --charset: 中文" in line
    assert os.listdir(tmp_path) == []


# 8. FIFOs, folders and broken links in --input; huge sweeps.

def test_fifos_folders_and_broken_links_in_input_are_rows_of_rejected_csv(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for text, colour in (("AB12", "white"), ("CD34", "grey"), ("EF56", "black")):
        Image.new("RGB", (64, 32), colour).save(folder / f"{text}.png")
    os.mkfifo(folder / "XY99.png")
    (folder / "dir.png").mkdir()
    os.symlink(folder / "nowhere.png", folder / "broken.png")
    listed = threading.Thread(target=ingest.list_labelled_files, args=(str(folder), None), daemon=True)
    listed.start()
    listed.join(60)
    assert not listed.is_alive(), "listing the folder waits on the FIFO"
    out = tmp_path / "out"
    pipeline_main.run(["--source=images", f"--input={folder}", f"--output_dir={out}", "--num_shards=1",
                       "--direct_running_mode=in_memory", "--direct_num_workers=1"])
    rows = (out / "rejected.csv").read_text().splitlines()
    assert rows[1:] == [f"{folder}/XY99.png,XY99,not a regular file: a FIFO",
                        f"{folder}/broken.png,broken,broken link",
                        f"{folder}/dir.png,dir,not a regular file: a folder"]


def test_sweep_over_the_variant_limit_is_refused_and_a_large_one_plans_with_progress(tmp_path, capsys):
    over = {"dataset": {"grid": {"seed": list(range(1000)), "train_size": list(range(1, 22))}}}
    with pytest.raises(ValueError, match="makes 21,000 variants, more than the 20,000"):
        sweep.plan(over, str(tmp_path))
    started = time.perf_counter()
    planned = sweep.plan({"dataset": {"base": {"val_size": 1, "test_size": 1},
                                      "grid": {"seed": list(range(50)), "train_size": list(range(1, 21))}}},
                         str(tmp_path))
    assert len(planned) == 1000 and "plan: 100%" in capsys.readouterr().err
    print(f"planned 1,000 variants in {time.perf_counter() - started:.1f} s")
    assert sweepfile.MAX_VARIANTS == 20_000


# 9. Ctrl-C.

def _ctrl_c_as_in_a_terminal():
    """SIGINT as a terminal's foreground command gets it: a suite started in the background (`cmd &` in a shell
    without job control) hands its children SIGINT ignored, and the render would then rightly finish."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_stops_a_render_in_one_line_with_status_130_and_no_temporary(tmp_path):
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-m", "pipeline.main", f"--output_dir={out}", "--train_size=20000",
                                "--val_size=10", "--test_size=10", "--direct_num_workers=1"],
                               stderr=subprocess.PIPE, text=True, cwd=os.path.dirname(os.path.dirname(__file__)),
                               preexec_fn=_ctrl_c_as_in_a_terminal)
    deadline = time.time() + 120
    while time.time() < deadline and not (out.is_dir() and any(".incomplete" in f for f in os.listdir(out))):
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == pipeline_main.INTERRUPTED
    errors = [line for line in err.splitlines() if "error" in line.lower() or "Traceback" in line]
    assert len(errors) == 1 and errors[0].startswith("error: interrupted before the render was complete")
    assert "the runner's log: " in errors[0]
    assert not [f for f in os.listdir(out) if "incomplete" in f or f == "spec.json"]


def test_ctrl_c_in_a_trainer_command_is_one_line_and_status_130(capsys):
    with pytest.raises(SystemExit) as stopped:
        with exit_on_user_error("interrupted: run the same command again to resume runs/x"):
            raise KeyboardInterrupt
    assert stopped.value.code == INTERRUPTED
    assert capsys.readouterr().err == "error: interrupted: run the same command again to resume runs/x\n"


def test_readers_share_a_lock_that_a_writer_cannot_take_and_the_writer_is_named_only_while_it_holds_it(tmp_path):
    with locks.hold(str(tmp_path), locks.DATASET_LOCK, shared=True), \
            locks.hold(str(tmp_path), locks.DATASET_LOCK, shared=True):
        with pytest.raises(locks.Busy) as busy:
            with locks.hold(str(tmp_path), locks.DATASET_LOCK):
                pass
        assert busy.value.holder is None and busy.value.who() == "readers"
    with locks.hold(str(tmp_path), locks.DATASET_LOCK):  # the readers are gone
        assert (tmp_path / locks.DATASET_LOCK).read_text() == f"{os.getpid()}\n"
    assert (tmp_path / locks.DATASET_LOCK).read_text() == ""

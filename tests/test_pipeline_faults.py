"""Bad input and faults: tampered specs, runs at once, mistyped flags, leftovers, one-line user errors."""
import json
import os
import re
import subprocess
import sys

import pytest
from apache_beam.options.pipeline_options import DirectOptions

from pipeline import benchmark, runners, shards, storage, sweep
from pipeline import config as dataset_config
from pipeline import main as pipeline_main

TINY = ["--train_size=8", "--val_size=4", "--test_size=4", "--num_shards=1",
        "--direct_running_mode=in_memory", "--direct_num_workers=1"]


def _files(folder):
    """{relative path: bytes} of every file under `folder`."""
    return {os.path.relpath(os.path.join(d, f), folder): open(os.path.join(d, f), "rb").read()
            for d, _, names in os.walk(folder) for f in names}


def test_shard_names_are_plain_names_of_the_shard_pattern():
    assert shards.is_shard_name("train.tfrecord-00000-of-00001")
    assert shards.is_shard_name("test.tfrecord-00012-of-00100")
    for name in ("../train.tfrecord-00000-of-00001", "/tmp/train.tfrecord-00000-of-00001", "sub", "spec.json",
                 "train.tfrecord-00000-of-00001\n", "train.tfrecord-0-of-1", "dev.tfrecord-00000-of-00001",
                 "sub/train.tfrecord-00000-of-00001", None, 3):
        assert not shards.is_shard_name(name)


@pytest.mark.parametrize("name", ["../victim.txt", "ABSOLUTE", "sub", "spec.json"])
def test_overwrite_refuses_a_spec_that_names_other_files(tmp_path, name):
    (tmp_path / "victim.txt").write_text("keep me")
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (out / "sub" / "data").write_text("keep me too")
    (out / "train.tfrecord-00000-of-00001").write_bytes(b"old shard")
    if name == "ABSOLUTE":
        name = str(tmp_path / "victim.txt")
    shards = [{"file": "train.tfrecord-00000-of-00001"}, {"file": name}]
    (out / "spec.json").write_text(json.dumps({"identity": "old", "splits": {"train": {"shards": shards}}}))
    before = _files(tmp_path)
    with pytest.raises(ValueError, match="%s.*%s.*not a shard file name.*nothing was deleted"
                                         % (re.escape(str(out)), re.escape(repr(name)))):
        pipeline_main.run(["--output_dir=%s" % out, *TINY, "--overwrite"])
    assert before.items() <= _files(tmp_path).items()


def test_spec_that_is_not_a_dataset_spec_is_a_clear_error(tmp_path):
    (tmp_path / "spec.json").write_text('{"identity": "x", "splits": 3}')
    with pytest.raises(ValueError, match="unreadable spec.json.*--overwrite"):
        pipeline_main.run(["--output_dir=%s" % tmp_path, *TINY])


HOLD_LOCK = """
import sys, time
from pipeline import storage
with storage.locked(sys.argv[1]):
    print("held", flush=True)
    time.sleep(120)
"""


def test_second_run_into_a_folder_in_use_fails_naming_it(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ValueError, match="%s is in use by another run" % re.escape(str(out))):
            pipeline_main.run(["--output_dir=%s" % out, *TINY])
        with pytest.raises(ValueError, match="%s is in use by another run" % re.escape(str(out))):
            sweep.run(["--sweep_file=%s" % _write(tmp_path / "sweep.yaml", SMALL_SWEEP % "[3]"),
                       "--output_root=%s" % out])
        assert os.listdir(out) == [storage.LOCK_FILE]
    finally:
        holder.kill()
        holder.wait()
    with storage.locked(str(out)):  # the lock of a killed run is released with its process
        pass


def test_remote_folders_are_not_locked_and_say_so(caplog):
    with storage.locked("gs://bucket/data"):
        pass
    assert "gs://bucket/data cannot be locked" in caplog.text


def test_temporary_files_have_names_of_their_own(tmp_path, monkeypatch):
    monkeypatch.setattr(storage.FileSystems, "rename", lambda sources, destinations: None)
    for _ in range(2):
        storage.write_atomic(str(tmp_path / "spec.json"), b"{}")
    names = os.listdir(tmp_path)
    assert len(names) == 2 and all(re.fullmatch(r"spec\.json\.[0-9a-f]{8}\.incomplete", n) for n in names)


@pytest.mark.parametrize("arg, message", [
    ("--lenght=6", "unknown argument --lenght=6 .*did you mean --length\\?"),
    ("--train-size=100", "did you mean --train_size\\?"),
    ("--runer=DirectRunner", "did you mean --runner\\?"),
    ("stray", "unknown argument stray"),
    ("--direct_num_workers=abc", "--direct_num_workers: invalid int value"),
    ("--direct_running_mode=fast", "--direct_running_mode: invalid choice"),
])
def test_mistyped_flag_fails_before_any_work(tmp_path, arg, message):
    with pytest.raises(ValueError, match=message):
        pipeline_main.run(["--output_dir=%s" % (tmp_path / "out"), *TINY, arg])
    assert not (tmp_path / "out").exists()


def test_beam_options_pass_through_untouched():
    beam_args = ["--runner=DataflowRunner", "--project=p", "--region", "r", "--temp_location=gs://b/tmp",
                 "--setup_file=./setup.py", "--direct_num_workers=1", "--experiments=x", "--streaming"]
    _, passed = dataset_config.parse(["--num_shards=1", *beam_args])
    assert passed == beam_args


def test_sweep_checks_its_beam_arguments_too(tmp_path):
    with pytest.raises(ValueError, match="unknown argument --runer=X.*did you mean --runner\\?"):
        sweep.run(["--sweep_file=%s" % (tmp_path / "s.yaml"), "--output_root=%s" % tmp_path, "--runer=X"])


def test_explicit_local_running_mode_is_kept():
    options = runners.pipeline_options(["--direct_running_mode=in_memory", "--direct_num_workers=1"])
    assert options.view_as(DirectOptions).direct_running_mode == "in_memory"
    assert runners.pipeline_options([]).view_as(DirectOptions).direct_running_mode == "multi_processing"


def test_finished_run_removes_leftover_shards_and_temporary_files(tmp_path):
    leftovers = ["train.tfrecord-00000-of-00003", "val.tfrecord-00001-of-00002",
                 "test.tfrecord-00000-of-00001.incomplete", "train.tfrecord-00002-of-00003.0123abcd.incomplete",
                 "spec.json.89abcdef.incomplete", "rejected.csv.0123abcd.incomplete"]
    kept = ["notes.txt", "train.tfrecord-00000-of-00003.bak", "spec.json.bak"]
    for name in leftovers + kept:
        (tmp_path / name).write_text("old")
    spec = pipeline_main.run(["--output_dir=%s" % tmp_path, *TINY])
    shards = [s["file"] for split in spec["splits"].values() for s in split["shards"]]
    assert sorted(f for f in os.listdir(tmp_path) if f != storage.LOCK_FILE) == sorted(
        shards + kept + ["spec.json"])


def _write(path, content):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def _main(t, *args):
    return pipeline_main.main(["--output_dir=%s" % (t / "out"), *TINY, *args])


def _sweep(t, text, *args):
    return sweep.main(["--sweep_file=%s" % _write(t / "sweep.yaml", text), "--output_root=%s" % (t / "root"),
                       *args])


SMALL_SWEEP = "dataset: {base: {train_size: 2, val_size: 0, test_size: 0}, grid: {length: %s}}"
USER_ERRORS = {
    "main: bad charset": lambda t: _main(t, "--charset=ABCA"),
    "main: mistyped flag": lambda t: _main(t, "--lenght=6"),
    "main: bad Beam option value": lambda t: _main(t, "--direct_num_workers=abc"),
    "main: labels file not UTF-8": lambda t: _main(
        t, "--source=images", "--input=%s" % _write(t / "labels.csv", b"path,label\n\xff.png,AB\n")),
    "main: output_dir is a file": lambda t: pipeline_main.main(["--output_dir=%s" % _write(t / "f", ""), *TINY]),
    "sweep: broken YAML": lambda t: _sweep(t, "dataset: {grid: {length: [3]"),
    "sweep: broken index.json": lambda t: (_write(t / "root" / "index.json", "[1, 2]"),
                                           _sweep(t, SMALL_SWEEP % "[3]"))[1],
    "sweep: repeated variant": lambda t: _sweep(t, SMALL_SWEEP % "[3, 3]"),
    "sweep: no --sweep_file": lambda t: sweep.main(["--output_root=%s" % (t / "root")]),
    "benchmark: unknown mode": lambda t: benchmark.main(["--modes=fast"]),
    "benchmark: not a number": lambda t: benchmark.main(["--num_records=many"]),
    "benchmark: no records": lambda t: benchmark.main(["--num_records=0"]),
}


@pytest.mark.parametrize("case", sorted(USER_ERRORS))
def test_user_error_exits_1_with_one_error_line(tmp_path, capsys, case):
    status = USER_ERRORS[case](tmp_path)
    err = capsys.readouterr().err
    assert status == 1 and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.startswith("error: ")]) == 1, err
    assert not (tmp_path / "out").exists()


def test_labels_file_errors_name_the_real_line(tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("path,label\na.png,AB\n\nb.png,CD\nc.png\n")
    with pytest.raises(ValueError, match="%s: line 5 should have 2 columns" % re.escape(str(labels))):
        pipeline_main.run(["--source=images", "--input=%s" % labels, "--output_dir=%s" % (tmp_path / "out")])
    labels.write_bytes(b"path,label\na.png,AB\n\xff.png,CD\n")
    with pytest.raises(ValueError, match="labels file %s is not UTF-8 text: line 3" % re.escape(str(labels))):
        pipeline_main.run(["--source=images", "--input=%s" % labels, "--output_dir=%s" % (tmp_path / "out")])

"""What a render prints: a progress line and a summary by default, the runners' logs with --verbosity=info.

    .venv/bin/python -m pytest tests/test_pipeline_progress.py -q
"""
import io
import os
import subprocess
import sys
import time

import pytest
from apache_beam.io.tfrecordio import _TFRecordUtil

from pipeline import config as dataset_config
from pipeline import main as pipeline_main
from pipeline import progress

TINY = ["--train_size=30", "--val_size=10", "--test_size=0", "--num_shards=2"]


def _render(folder, *extra):
    env = dict(os.environ)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # as a newcomer's shell has it
    return subprocess.run([sys.executable, "-m", "pipeline.main", "--output_dir=%s" % folder, *TINY, *extra],
                          capture_output=True, text=True, env=env, timeout=300)


def test_default_run_shows_progress_and_a_summary_and_no_start_up_logs(tmp_path):
    result = _render(tmp_path, "--direct_num_workers=2")
    assert result.returncode == 0, result.stderr
    progress_line = result.stderr.replace("\r", "\n").strip().splitlines()
    assert progress_line and all(line.startswith("render: ") for line in progress_line), result.stderr
    assert progress_line[-1].startswith("render: 40/40 records 100%")
    summary = result.stdout.splitlines()
    assert summary[0].startswith("wrote 40 records (train 30, val 10, test 0) in 4 shards to %s in " % tmp_path)
    assert summary[0].endswith("on FnApiRunner")
    assert summary[2] == "Beam counters: bytes_written=%d, records_rendered=40, shards_written=4" % sum(
        os.path.getsize(tmp_path / f) for f in os.listdir(tmp_path) if ".tfrecord-" in f)
    assert summary[-1] == ("train on it: python -m trainer.main --model=ctc --data_dir=%s --model_dir=runs/ctc"
                           % tmp_path)


def test_verbosity_info_brings_the_runners_logs_back(tmp_path):
    result = _render(tmp_path, "--direct_num_workers=1", "--verbosity=info")
    assert result.returncode == 0, result.stderr
    assert "render: " not in result.stderr
    assert "INFO" in result.stderr and "sdk_worker" in result.stderr, "the Beam worker's own logs"
    assert "wrote train.tfrecord-00000-of-00002: 15 records" in result.stderr
    assert result.stdout.startswith("wrote 40 records")


def test_bad_verbosity_is_one_error_line(tmp_path, capsys):
    assert pipeline_main.main(["--output_dir=%s" % tmp_path, "--verbosity=loud"]) == 1
    assert capsys.readouterr().err == ("error: argument --verbosity: invalid choice: 'loud' "
                                       "(choose from 'progress', 'info', 'debug')\n")


def _frames(count):
    buffer = io.BytesIO()
    for i in range(count):
        _TFRecordUtil.write_record(buffer, b"record %d" % i)
    return buffer.getvalue()


def test_progress_counts_records_as_workers_write_them(tmp_path, capfd):
    """Shards of 5 records; a shard and a temporary file left by a killed run count only once written."""
    config, _ = dataset_config.parse(["--output_dir=%s" % tmp_path, "--train_size=10", "--val_size=0",
                                      "--test_size=0", "--num_shards=2"])
    (tmp_path / "train.tfrecord-00000-of-00002").write_bytes(_frames(5))
    (tmp_path / "train.tfrecord-00000-of-00002.0badf00d.incomplete").write_bytes(_frames(4))
    temporary = tmp_path / "train.tfrecord-00001-of-00002.0123abcd.incomplete"
    lines = []

    def last_line():
        time.sleep(0.4)
        lines.append(capfd.readouterr().err.replace("\r", "\n").strip().splitlines()[-1])

    with progress.watch([config], interval=0.05):
        last_line()
        temporary.write_bytes(_frames(3)[:-5])  # two records and part of a third
        last_line()
        temporary.rename(tmp_path / "train.tfrecord-00001-of-00002")
        last_line()
        os.utime(tmp_path / "train.tfrecord-00000-of-00002", (1, 1))  # written again
    lines.append(capfd.readouterr().err)
    assert [line.split("|")[0] for line in lines[:3]] == [
        "render: 0/10 records   0% ", "render: 2/10 records  20% ", "render: 5/10 records  50% "]
    assert "render: 10/10 records 100%" in lines[3]


def test_a_failed_run_keeps_its_log_and_names_it(capfd):
    with pytest.raises(RuntimeError):
        with progress.stderr_to_log():
            os.write(2, b"a worker says why\n")
            raise RuntimeError("failed")
    err = capfd.readouterr().err
    assert err.startswith("the runner's log: ")
    log = err.strip().rsplit(" ", 1)[-1]
    with open(log) as f:
        assert f.read() == "a worker says why\n"
    os.remove(log)

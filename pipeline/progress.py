"""What a render prints: one live progress line (tqdm) and a summary by default, runners' logs on request.

    python -m pipeline.main --train_size=20000                   # progress line, then the summary
    python -m pipeline.main --train_size=20000 --verbosity=info  # plus Beam's, Dask's and our INFO logs

Progress comes from what every runner leaves where the launching process can see it, polled once a second:
the finished shard files in the output folders (local or gs://...), each holding a known range of records,
and within a shard the records its worker has written so far into the shard's temporary file (on local
and shared filesystems; object stores show a file only once it is closed). The images source, whose
shards are filled by content, is counted in shards.
While the line shows, stderr (file descriptor 2, which local worker processes inherit) goes to a log file:
Beam's FnApiRunner hands its workers no log level, so this is what keeps their INFO out. The log is
deleted after a run that succeeds or stops on a user error, and named on stderr after one that fails or is
interrupted.
"""

import argparse
import contextlib
import logging
import os
import struct
import sys
import tempfile
import threading
from typing import Dict, List

import tqdm
from apache_beam.io.filesystem import BeamIOError, CompressionTypes
from apache_beam.io.filesystems import FileSystems

from pipeline import storage
from pipeline.config import DatasetConfig, add_verbosity_flag
from pipeline.shards import SPLITS, shard_name, shard_range

QUIET_LOGGERS = ("apache_beam", "distributed", "absl", "grpc")


def parse_verbosity(argv) -> str:
    """--verbosity from `argv` (the other arguments are left to their own parser)."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False, exit_on_error=False)
    add_verbosity_flag(parser)
    try:
        return parser.parse_known_args(argv)[0].verbosity
    except argparse.ArgumentError as e:
        raise ValueError(str(e)) from None


def configure_logging(verbosity: str) -> None:
    """Root logging for an entry point: by default WARNING and above only, gRPC's C core quiet too."""
    level = {"progress": logging.WARNING, "info": logging.INFO, "debug": logging.DEBUG}[verbosity]
    logging.basicConfig(format="%(asctime)s %(levelname)s %(message)s", force=True)
    logging.getLogger().setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(level)
    if verbosity == "progress":
        os.environ.setdefault("GRPC_VERBOSITY", "ERROR")


def expected_shards(config: DatasetConfig) -> Dict[str, int]:
    """{shard file name: records it will hold} of a synthetic dataset; {name: 1} for the images source."""
    shards = {}
    for split in SPLITS:
        for shard in range(config.num_shards[split]):
            count = 1 if config.ingest else len(shard_range(config.sizes[split], config.num_shards[split], shard))
            shards[shard_name(split, shard, config.num_shards[split])] = count
    return shards


@contextlib.contextmanager
def stderr_to_log():
    """Sends file descriptor 2 to a temporary log file for the block; yields a stream on the real stderr."""
    sys.stderr.flush()
    terminal = os.fdopen(os.dup(2), "w")
    log = tempfile.NamedTemporaryFile(prefix="captcha-pipeline-", suffix=".log", delete=False)
    os.dup2(log.fileno(), 2)
    try:
        yield terminal
    except ValueError:  # a user error, which says all
        _restore(terminal, log)
        os.remove(log.name)
        raise
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM (pipeline.main): its one line names the log
        _restore(terminal, log)
        raise KeyboardInterrupt(log.name) from None
    except BaseException:
        _restore(terminal, log)
        print("the runner's log: %s" % log.name, file=sys.stderr)
        raise
    _restore(terminal, log)
    os.remove(log.name)


def _restore(terminal, log) -> None:
    sys.stderr.flush()
    os.dup2(terminal.fileno(), 2)
    terminal.close()
    log.close()


@contextlib.contextmanager
def watch(configs: List[DatasetConfig], enabled: bool = True, interval: float = 1.0):
    """Shows a progress line for the block, fed by the shards that appear (or are rewritten) in the
    configs' output folders (a shard already there before the block counts once it is written again), and
    keeps stderr in a log file meanwhile."""
    if not enabled or not configs:
        yield
        return
    with stderr_to_log() as terminal:
        with _progress_line(configs, terminal, interval):
            yield


def count_records(path: str, size: int, state: List[int]) -> None:
    """Counts on the complete TFRecord frames (8-byte length, 4-byte CRC, data, 4-byte CRC) of the first
    `size` bytes of the file at `path`, from `state` = [offset, records], which it updates. A file that
    is gone (renamed when its shard was done) is left as counted."""
    try:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            while state[0] + 8 <= size:
                f.seek(state[0])
                length = struct.unpack("<Q", f.read(8))[0]
                if state[0] + 16 + length > size:
                    break
                state[0], state[1] = state[0] + 16 + length, state[1] + 1
    except (OSError, BeamIOError):
        pass


@contextlib.contextmanager
def _progress_line(configs: List[DatasetConfig], terminal, interval: float):
    folders = {c.output_dir: expected_shards(c) for c in configs}
    before = {folder: storage.file_stamps(folder) for folder in folders}
    unit = "shards" if any(c.ingest for c in configs) else "records"
    total = sum(sum(shards.values()) for shards in folders.values())
    done, partial = set(), {}  # finished (folder, shard); temporary file path -> [offset, records]
    bar = tqdm.tqdm(total=total, file=terminal, unit=" " + unit, smoothing=0, dynamic_ncols=True,
                    desc="render", bar_format="{desc}: {n_fmt}/{total_fmt}{unit} {percentage:3.0f}% |{bar}| "
                                              "{elapsed}<{remaining}, {rate_fmt}")
    stop = threading.Event()

    def poll():
        count = 0
        for folder, shards in folders.items():
            stamps = storage.file_stamps(folder)
            for name, (size, _) in stamps.items():
                target = storage.temporary_target(name)
                if name in shards and stamps[name] != before[folder].get(name):
                    done.add((folder, name))
                elif unit == "records" and target in shards and name not in before[folder]:
                    count_records(storage.join(folder, name), size, partial.setdefault((folder, name), [0, 0]))
            count += sum(shards[name] for f, name in done if f == folder)
            count += sum(state[1] for (f, name), state in partial.items()
                         if f == folder and (folder, storage.temporary_target(name)) not in done)
        if count > bar.n:
            bar.update(count - bar.n)
        else:
            bar.refresh()  # the elapsed time and rate go on

    def loop():
        while not stop.wait(interval):
            poll()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
        stop.set()
        thread.join()
        poll()
    finally:
        stop.set()
        bar.close()

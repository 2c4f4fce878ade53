"""File access through Beam's FileSystems, so local folders and gs://, s3://, hdfs:// all work."""

import contextlib
import json
import logging
import os
import re
import uuid
from typing import Dict, List, Optional, Tuple

from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystems import FileSystems

from safeio import locks

LOCK_FILE = locks.DATASET_LOCK  # trainings share it while they read the dataset
TEMPORARY_NAME = re.compile(r"(.+?)(?:\.[0-9a-f]{8})?\.incomplete")  # older versions wrote NAME.incomplete


def join(folder: str, name: str) -> str:
    return FileSystems.join(folder, name)


def is_local(path: str) -> bool:
    return "://" not in path


def ensure_writable(folder: str, flag: str = "--output_dir") -> None:
    """Creates `folder` if needed and proves it writable; raises ValueError naming `flag` and the reason if not."""
    if is_local(folder) and os.path.isfile(folder):
        raise ValueError("%s %s is a file; give a folder" % (flag, folder))
    probe = join(folder, ".write-probe-%s" % uuid.uuid4().hex)
    try:
        if is_local(folder):
            os.makedirs(folder, exist_ok=True)
        with FileSystems.create(probe) as f:
            f.write(b"")
        FileSystems.delete([probe])
    except Exception as e:  # OSError locally, BeamIOError or a client error remotely
        raise ValueError("%s %s cannot be written: %s" % (flag, folder, e)) from None


@contextlib.contextmanager
def locked(folder: str):
    """Holds the lock file of an existing local `folder` alone for the block; raises ValueError if another render
    holds it, or a training or evaluation reads the dataset there (safeio.locks). Remote folders (gs://...)
    cannot be locked: logs a warning and goes on."""
    if not is_local(folder):
        logging.warning("%s cannot be locked (not a local folder): make sure no other run writes there "
                        "at the same time", folder)
        yield
        return
    try:
        lock = locks.take(folder, LOCK_FILE)
    except locks.Busy as busy:
        if busy.holder is None:
            raise ValueError("%s is being read by a training or an evaluation (they share %s); wait for them to "
                             "end, or choose another folder" % (folder, LOCK_FILE)) from None
        raise ValueError("%s is in use by another run (process %d holds %s); wait for that run to end, or choose "
                         "another folder" % (folder, busy.holder, LOCK_FILE)) from None
    except OSError as e:  # e.g. too many open files: a sweep holds one lock per variant
        raise ValueError("%s cannot be locked: %s" % (folder, e)) from None
    with lock:
        yield


def read_json(path: str):
    """Returns the parsed file, or None if it does not exist."""
    if not FileSystems.exists(path):
        return None
    with FileSystems.open(path) as f:
        return json.loads(f.read().decode("utf-8"))


@contextlib.contextmanager
def atomic_writer(path: str):
    """Yields a file to write `path` through: a temporary file of this write's own beside it
    (NAME.<8 hex>.incomplete), renamed over `path` when the block ends without an error, deleted when it fails."""
    temporary = "%s.%s.incomplete" % (path, uuid.uuid4().hex[:8])
    try:
        with FileSystems.create(temporary) as f:
            yield f
        FileSystems.rename([temporary], [path])
    except BaseException:  # a full disk, a failed worker, Ctrl-C: leave no temporary file behind
        with contextlib.suppress(Exception):
            delete_if_exists([temporary])
        raise


def write_atomic(path: str, data: bytes) -> None:
    """Writes `data` to `path` through a temporary file (`atomic_writer`)."""
    with atomic_writer(path) as f:
        f.write(data)


def temporary_target(name: str) -> Optional[str]:
    """The name that `write_atomic`'s temporary file `name` was to become, or None if it is not one."""
    found = TEMPORARY_NAME.fullmatch(name)
    return found.group(1) if found else None


def file_names(folder: str) -> List[str]:
    """The names of the files directly in `folder`: never a sub-folder or a file inside one."""
    return sorted(m.path.replace("\\", "/").rsplit("/", 1)[-1]
                  for m in FileSystems.match([join(folder, "*")])[0].metadata_list)


def file_stamps(folder: str) -> Dict[str, Tuple[int, float]]:
    """{name: (size, last modified)} of the files directly in `folder`; {} if it cannot be listed."""
    try:
        found = FileSystems.match([join(folder, "*")])[0].metadata_list
    except BeamIOError:  # a remote folder that cannot be listed right now: no news this time
        return {}
    return {m.path.replace("\\", "/").rsplit("/", 1)[-1]: (m.size_in_bytes, m.last_updated_in_seconds)
            for m in found}


def delete_if_exists(paths) -> None:
    existing = [p for p in paths if FileSystems.exists(p)]
    if existing:
        FileSystems.delete(existing)

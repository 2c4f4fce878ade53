"""File access through Beam's FileSystems, so local folders and gs://, s3://, hdfs:// all work."""

import contextlib
import json
import logging
import os
import re
import uuid
from typing import Dict, List, Optional, Tuple

import fasteners
from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystems import FileSystems

LOCK_FILE = ".pipeline.lock"
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
    """Holds the lock file of an existing local `folder` for the block; raises ValueError if another
    process holds it. Remote folders (gs://...) cannot be locked: logs a warning and goes on."""
    if not is_local(folder):
        logging.warning("%s cannot be locked (not a local folder): make sure no other run writes there "
                        "at the same time", folder)
        yield
        return
    lock = fasteners.InterProcessLock(os.path.join(folder, LOCK_FILE))
    if not lock.acquire(blocking=False):
        raise ValueError("%s is in use by another run (it holds %s); wait for that run to end, or choose "
                         "another folder" % (folder, LOCK_FILE))
    try:
        yield
    finally:
        lock.release()


def read_json(path: str):
    """Returns the parsed file, or None if it does not exist."""
    if not FileSystems.exists(path):
        return None
    with FileSystems.open(path) as f:
        return json.loads(f.read().decode("utf-8"))


@contextlib.contextmanager
def atomic_writer(path: str):
    """Yields a file to write `path` through: a temporary file of this write's own beside it
    (NAME.<8 hex>.incomplete), renamed over `path` when the block ends without an error."""
    temporary = "%s.%s.incomplete" % (path, uuid.uuid4().hex[:8])
    with FileSystems.create(temporary) as f:
        yield f
    FileSystems.rename([temporary], [path])


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

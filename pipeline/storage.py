"""File access through Beam's FileSystems, so local folders and gs://, s3://, hdfs:// all work."""

import json
import os
import uuid

from apache_beam.io.filesystems import FileSystems


def join(folder: str, name: str) -> str:
    return FileSystems.join(folder, name)


def is_local(path: str) -> bool:
    return "://" not in path


def ensure_writable(folder: str) -> None:
    """Creates `folder` if needed and proves it writable; raises ValueError with the reason if not."""
    probe = join(folder, ".write-probe-%s" % uuid.uuid4().hex)
    try:
        if is_local(folder):
            os.makedirs(folder, exist_ok=True)
        with FileSystems.create(probe) as f:
            f.write(b"")
        FileSystems.delete([probe])
    except Exception as e:  # OSError locally, BeamIOError or a client error remotely
        raise ValueError("--output_dir %s cannot be written: %s" % (folder, e)) from None


def read_json(path: str):
    """Returns the parsed file, or None if it does not exist."""
    if not FileSystems.exists(path):
        return None
    with FileSystems.open(path) as f:
        return json.loads(f.read().decode("utf-8"))


def write_atomic(path: str, data: bytes) -> None:
    """Writes a temporary file beside `path`, then renames it over `path`."""
    temporary = path + ".incomplete"
    with FileSystems.create(temporary) as f:
        f.write(data)
    FileSystems.rename([temporary], [path])


def delete_if_exists(paths) -> None:
    existing = [p for p in paths if FileSystems.exists(p)]
    if existing:
        FileSystems.delete(existing)

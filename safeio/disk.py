"""Telling a full disk from other write errors, wherever the runner or library wrapped it."""
import errno
import shutil
from typing import Optional

FULL_DISK_TEXTS = ("No space left on device", "[Errno 28]", "Disk quota exceeded", "[Errno 122]")


def is_full(error: BaseException) -> bool:
    """Whether `error`, or an error it was raised from, is ENOSPC or EDQUOT: as an OSError, or as text inside the
    error of a runner (Beam re-raises a worker's OSError as RuntimeError) or a library (h5py, TensorFlow)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if getattr(error, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(text in str(error) for text in FULL_DISK_TEXTS):
            return True
        error = error.__cause__ or error.__context__
    return False


def free_bytes(folder: str) -> Optional[int]:
    """The bytes free on the disk of the local `folder`, or None where that cannot be told (remote, missing)."""
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def megabytes(n: float) -> str:
    return "%.1f MB" % (n / 1e6)

"""Folder locks: one writer, or any number of readers, per folder; the writer's process id in the lock file.

A dataset folder's lock is DATASET_LOCK: a render (pipeline.main, pipeline.sweep) holds it alone while it writes;
trainings and evaluations share it while they read, so a render refuses to overwrite a dataset being read. A
model_dir's lock is RUN_LOCK, held alone by the training that writes there. These are flock(2) locks: the kernel
drops them when their process dies, so a killed run never leaves a lock that blocks its resume. Hand-written
because fasteners (which Beam brings) neither shares a lock between readers nor says who holds one.
"""
import contextlib
import fcntl
import os
from typing import Optional

DATASET_LOCK = ".pipeline.lock"
RUN_LOCK = ".trainer.lock"


class Busy(Exception):
    """The lock is held by another process: `holder` is the writer's process id, None when readers hold it."""

    def __init__(self, path: str, holder: Optional[int]):
        super().__init__(path, holder)
        self.path, self.holder = path, holder

    def who(self) -> str:
        """"process 1234" for a writer; "readers" otherwise."""
        return "process %d" % self.holder if self.holder else "readers"


def _holder(fd: int) -> Optional[int]:
    try:
        return int(os.pread(fd, 32, 0).decode().strip() or 0) or None
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def hold(folder: str, name: str, shared: bool = False):
    """Holds the lock file `name` of the existing local `folder` for the block, alone or `shared` with other
    readers; raises Busy at once if it cannot. A reader that may not create the lock file (a read-only dataset,
    which no render can overwrite either) goes on without it; one that may only read it still shares it."""
    path = os.path.join(folder, name)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:  # no write access, a read-only filesystem: a reader locks a lock file it may only read, if any
        if not shared:
            raise
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            yield
            return
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy(path, _holder(fd)) from None
        _write_holder(fd, None if shared else os.getpid())  # a reader clears the id that a killed writer left
        try:
            yield
        finally:
            if not shared:
                _write_holder(fd, None)
    finally:
        os.close(fd)  # releases the lock


def take(folder: str, name: str, shared: bool = False) -> contextlib.ExitStack:
    """`hold`, entered now: Busy is raised here, never from inside the caller's block; `with` the result releases it."""
    held = contextlib.ExitStack()
    held.enter_context(hold(folder, name, shared))
    return held


def _write_holder(fd: int, pid: Optional[int]) -> None:
    try:
        os.ftruncate(fd, 0)
        if pid:
            os.pwrite(fd, b"%d\n" % pid, 0)
    except OSError:  # a full disk: the lock holds all the same, only its holder goes unnamed
        pass

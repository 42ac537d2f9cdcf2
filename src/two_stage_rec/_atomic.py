"""Atomic writes: a reader finds the old file or directory, or the new one, never a mixture.

Every writer in this package that replaces something another process may be
reading goes through here (a FAISS snapshot and its pointer, a models bundle, a
models-only export, the dataset cache), so "what does a crash mid-write leave
behind" has one answer:

* :func:`atomic_file` writes a temporary file beside the target, fsyncs it and
  ``os.replace``-s it in. A rename within one directory is atomic on POSIX and
  Windows, so readers see the old bytes or the new ones.
* :func:`atomic_directory` fills a hidden staging sibling (``.<name>.tmp-*``),
  fsyncs it and swaps it in with :func:`replace_directory`. No file system
  call replaces a non-empty directory atomically, so the old one is renamed
  aside (``.<name>.old-*``), the new one renamed in, and the old one deleted;
  if the second rename fails the old one is renamed back. A crash between the
  two renames leaves the target missing, never mixed, with the old copy beside
  it. Where a reader must never find the target missing, keep versions side
  by side and switch a pointer file with :func:`atomic_file` (the FAISS store
  does this).

Every file is fsynced before the rename that publishes it: without that, a
power cut shortly after a rename can leave a published name pointing at empty
or partial files on common file systems.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "atomic_directory",
    "atomic_file",
    "fsync_directory",
    "fsync_file",
    "fsync_tree",
    "replace_directory",
    "write_atomically",
]


def fsync_file(path: Path) -> None:
    """Flush a written file's data to the disk."""
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def fsync_directory(path: Path) -> None:
    """Make the renames and creations inside ``path`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some platforms refuse fsync on a directory handle; the data is still written
        pass
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every file under ``root``, then every directory, deepest first."""
    for folder, _, files in os.walk(root, topdown=False):
        for name in files:
            fsync_file(Path(folder, name))
        fsync_directory(Path(folder))


@contextmanager
def atomic_file(path: str | os.PathLike[str], *, prefix: str = ".tmp-") -> Iterator[BinaryIO]:
    """Open a temporary file beside ``path`` for writing; on success it replaces ``path``.

    If the block raises, the temporary file is removed and ``path`` is untouched.

    Args:
        path: the file to create or replace; its directory must exist.
        prefix: name prefix of the temporary file (so a cleaner can recognise leftovers).

    Yields:
        A binary file handle.
    """
    target = Path(path)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=prefix)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    fsync_directory(target.parent)


def write_atomically(path: str | os.PathLike[str], data: bytes, *, prefix: str = ".tmp-") -> None:
    """Replace the file ``path`` with ``data`` through :func:`atomic_file`."""
    with atomic_file(path, prefix=prefix) as handle:
        handle.write(data)


def replace_directory(source: Path, target: Path) -> None:
    """Rename the complete directory ``source`` to ``target``, replacing whatever is there.

    ``source`` and ``target`` must be on one file system (siblings, or inside
    one parent). The old ``target`` is renamed aside first and deleted after
    the swap; if renaming ``source`` in fails, the old one is put back and the
    error re-raised.
    """
    previous = None
    if target.exists():
        previous = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
        os.rename(target, previous)
    try:
        os.rename(source, target)
    except BaseException:
        if previous is not None:
            os.rename(previous, target)  # put the old copy back rather than leave none
        raise
    fsync_directory(target.parent)
    if previous is not None:
        if previous.is_dir():
            shutil.rmtree(previous, ignore_errors=True)
        else:
            previous.unlink(missing_ok=True)


@contextmanager
def atomic_directory(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Fill a staging directory; on success it replaces the directory ``path`` whole.

    The staging directory is a hidden sibling (``.<name>.tmp-<hex>``), so the
    final renames stay on one file system. If the block raises, or the swap
    fails, the staging directory is deleted and ``path`` keeps its old content.
    The parent of ``path`` is created if needed.

    Yields:
        The empty staging directory to write into.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    staging.mkdir()
    try:
        yield staging
        fsync_tree(staging)
        replace_directory(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise

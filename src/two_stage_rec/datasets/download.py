"""Download MovieLens-100K once, verify it, and keep it in a per-user cache.

Nothing unverified ever reaches the cache: the zip is downloaded into a
temporary folder inside the cache directory, unpacked and checked there, and
only then swapped into place (``two_stage_rec._atomic.replace_directory``: an
old copy is renamed aside and restored if the swap fails). An interrupted,
truncated or corrupt download raises and leaves the cache as it was.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from two_stage_rec._atomic import fsync_tree, replace_directory
from two_stage_rec.datasets import checksums as _checksums
from two_stage_rec.datasets.checksums import Checksums, sha256_file, verify_folder
from two_stage_rec.errors import ChecksumMismatchError, DatasetError

__all__ = ["CACHE_ENV_VAR", "CACHE_FOLDER_NAME", "default_cache_dir", "download_movielens_100k"]

CACHE_ENV_VAR = "TWO_STAGE_REC_CACHE"
"""Environment variable naming the cache directory (overrides the platform default)."""

CACHE_FOLDER_NAME = "ml-100k"
"""Sub-folder of the cache directory that holds the verified files."""

_MAX_MEMBER_BYTES = 64 * 1024 * 1024  # the largest ML-100K file is 2 MB; refuse zip bombs
_TIMEOUT_SECONDS = 60
_CHUNK_BYTES = 64 * 1024


def default_cache_dir() -> Path:
    """The cache directory: ``$TWO_STAGE_REC_CACHE``, else the platform's user cache.

    The platform default comes from ``pooch.os_cache("two_stage_rec")``, e.g.
    ``~/.cache/two_stage_rec`` on Linux.
    """
    configured = os.environ.get(CACHE_ENV_VAR)
    if configured:
        return Path(configured).expanduser()
    import pooch

    return Path(pooch.os_cache("two_stage_rec"))


def download_movielens_100k(
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    url: str | None = None,
    checksums: Checksums | None = None,
    progress: bool = True,
    force: bool = False,
) -> Path:
    """Download, unpack and verify the ML-100K zip into ``<cache_dir>/ml-100k``.

    Args:
        cache_dir: cache directory; defaults to :func:`default_cache_dir`.
        url: where to download the zip from (an ``http(s)://`` URL); default
            :data:`~two_stage_rec.datasets.checksums.ML_100K_URL`.
        checksums: expected digests of the zip (if known) and of its members;
            default :data:`~two_stage_rec.datasets.checksums.ML_100K_CHECKSUMS`.
        progress: show a download progress bar (tqdm, on stderr).
        force: download again even if a verified copy is cached; the old copy
            is replaced only once the new one is verified.

    Returns:
        The folder holding the verified files.

    Raises:
        DatasetError: the download failed or was cut short, or the zip lacks a
            required file. Nothing is cached.
        ChecksumMismatchError: the zip or a member does not match its digest,
            or the zip is unreadable. Nothing is cached.
    """
    # Defaults are read at call time (not bound at import) so that one place defines them.
    url = url if url is not None else _checksums.ML_100K_URL
    checksums = checksums if checksums is not None else _checksums.ML_100K_CHECKSUMS
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    target = root / CACHE_FOLDER_NAME
    if target.is_dir() and not force:
        verify_folder(
            target,
            checksums,
            label=f"the cached copy {target} (download it again with force=True, "
            "or `two-stage-rec data download --force`)",
        )
        return target
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetError(f"cannot create the cache directory {root}: {exc}") from exc
    # The scratch folder lives inside the cache directory, so the final rename
    # stays on one file system (and is therefore atomic).
    with tempfile.TemporaryDirectory(dir=root, prefix=".download-") as scratch:
        work = Path(scratch)
        archive = work / "archive.zip"
        _download(url, archive, progress=progress)
        if checksums.archive is not None:
            actual = sha256_file(archive)
            if actual != checksums.archive:
                raise ChecksumMismatchError(
                    f"the download from {url} is corrupt or partial: sha256 {actual} "
                    f"differs from the expected {checksums.archive}; nothing was cached"
                )
        unpacked = work / CACHE_FOLDER_NAME
        _unpack(archive, unpacked, url=url)
        verify_folder(unpacked, checksums, label=f"the zip downloaded from {url} (nothing was cached)")
        _install(unpacked, target)
    return target


def _download(url: str, destination: Path, *, progress: bool) -> None:
    import pooch

    downloader = pooch.HTTPDownloader(progressbar=progress, chunk_size=_CHUNK_BYTES, timeout=_TIMEOUT_SECONDS)
    try:
        downloader(url, str(destination), None)
    except OSError as exc:  # requests' errors (HTTP status, connection, truncated body) are OSErrors
        raise DatasetError(
            f"could not download MovieLens-100K from {url}: {exc}. Nothing was cached. "
            "Check the connection, or point data_dir= / --data-dir (or $TWO_STAGE_REC_DATA) "
            "at a local ml-100k folder."
        ) from exc


def _unpack(archive: Path, destination: Path, *, url: str) -> None:
    """Extract the zip's files, flattened, into ``destination``.

    Only plain files at most one folder deep (``ml-100k/u.data``) are taken,
    written by name, so a hostile member path (``../../x``) cannot escape.
    """
    destination.mkdir()
    try:
        with zipfile.ZipFile(archive) as bundle:
            for info in bundle.infolist():
                parts = PurePosixPath(info.filename).parts
                if info.is_dir() or len(parts) > 2 or ".." in parts or parts[-1].startswith("."):
                    continue
                if info.file_size > _MAX_MEMBER_BYTES:
                    raise ChecksumMismatchError(f"{info.filename} in {url} is implausibly large")
                with bundle.open(info) as source, (destination / parts[-1]).open("wb") as sink:
                    shutil.copyfileobj(source, sink)
    except (zipfile.BadZipFile, EOFError) as exc:
        raise ChecksumMismatchError(
            f"the download from {url} is not a readable zip (corrupt or partial: {exc}); nothing was cached"
        ) from exc


def _install(unpacked: Path, target: Path) -> None:
    """Swap a verified folder in for ``target`` (an existing copy is replaced whole)."""
    try:
        fsync_tree(unpacked)
        replace_directory(unpacked, target)
    except OSError as exc:  # e.g. another process installed a copy in between
        raise DatasetError(f"cannot move the verified download into {target}: {exc}") from exc

"""Published checksums of MovieLens-100K, and verification of a data folder against them."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from two_stage_rec.errors import ChecksumMismatchError, DatasetError, InvalidInputError

__all__ = [
    "Checksums",
    "ML_100K_CHECKSUMS",
    "ML_100K_URL",
    "sha256_file",
    "verify_folder",
]

ML_100K_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
"""The official GroupLens download (the 1998 data, zipped in 2016; 4,924,029 bytes)."""

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class Checksums:
    """Expected SHA-256 digests (lower-case hex) of a data set.

    Attributes:
        members: file name -> digest, for every file that must be present in
            the data folder. These are always checked: they prove the data is
            right whichever way it arrived (download, cache, or a local copy).
        archive: digest of the downloaded zip itself, or ``None`` to skip that
            check (the member digests still apply).
    """

    members: Mapping[str, str]
    archive: str | None = None

    def __post_init__(self) -> None:
        if not self.members:
            raise InvalidInputError("Checksums needs at least one member file")
        digests = [*self.members.values(), *([self.archive] if self.archive is not None else [])]
        for digest in digests:
            if not _SHA256_HEX.fullmatch(digest.lower()):
                raise InvalidInputError(f"{digest!r} is not a SHA-256 hex digest (64 hex characters)")
        # A read-only copy, so a shared default can never be edited in place.
        frozen = MappingProxyType({name: digest.lower() for name, digest in self.members.items()})
        object.__setattr__(self, "members", frozen)
        if self.archive is not None:
            object.__setattr__(self, "archive", self.archive.lower())


ML_100K_CHECKSUMS = Checksums(
    members={
        # The three files the loader parses (sha256sum of the GroupLens release).
        "u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
        "u.item": "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
        "u.user": "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c",
    },
    # GroupLens publishes the zip's MD5 (ml-100k.zip.md5: 0e33842e24a9c977be4e0107933c0723);
    # this SHA-256 of the same 4,924,029-byte file is the one independent projects pin.
    # It could not be recomputed here (no internet), which is why the member
    # digests above are checked as well: they were computed from the files.
    archive="50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
)
"""Checksums of the official ``ml-100k.zip`` and of ``u.data``, ``u.item``, ``u.user``."""


def sha256_file(path: Path, *, chunk_size: int = 1 << 20) -> str:
    """Lower-case hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def verify_folder(folder: Path, checksums: Checksums, *, label: str | None = None) -> None:
    """Check that ``folder`` holds every member file with its expected digest.

    Hashing the three ML-100K files takes a few milliseconds, so this runs on
    every load: a truncated or edited file never reaches a model silently.

    Args:
        folder: the folder to check.
        checksums: the expected digests.
        label: how messages name the folder (default: its path).

    Raises:
        DatasetError: ``folder`` is not a directory, or files are missing
            (all missing names are listed).
        ChecksumMismatchError: a file's digest differs (corrupt, partial, or not
            the published file).
    """
    name_of_folder = label or f"MovieLens-100K folder {folder}"
    if not folder.is_dir():
        raise DatasetError(f"{name_of_folder} does not exist or is not a directory")
    missing = [name for name in checksums.members if not (folder / name).is_file()]
    if missing:
        raise DatasetError(f"{name_of_folder} is incomplete: missing {', '.join(missing)}")
    for name, expected in checksums.members.items():
        actual = sha256_file(folder / name)
        if actual != expected:
            raise ChecksumMismatchError(
                f"{name_of_folder}: {name} is corrupt, partial or not the published file "
                f"(sha256 {actual}, expected {expected})"
            )

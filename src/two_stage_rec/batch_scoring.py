"""Batch scoring: recommendations for many users, streamed to a JSON Lines file with bounded memory.

``two-stage-rec recommend --users-file ... --output ...`` runs :func:`score_users`;
:mod:`two_stage_rec.distributed` runs the same job on a Dask cluster and
writes the same bytes. Users are read lazily and scored in chunks of
``chunk_size`` through
:meth:`~two_stage_rec.assembly.AssembledRecommender.recommend_batch`, and each
chunk's lines are written before the next chunk is read, so memory holds one
chunk whatever the number of users::

    from two_stage_rec.assembly import assemble
    from two_stage_rec.batch_scoring import read_user_ids, score_users

    with assemble("models/") as served:
        result = score_users(served, read_user_ids("users.txt"), "recs.jsonl", k=10)
    print(result.users, result.fallback, round(result.users_per_second))

Each output line is one user, in input order::

    {"user_id": "42", "items": [{"item_id": "50", "score": 4.81234}, ...], "source": "model"}

items best first (scores: higher is better, rounded to 6 decimals),
``source`` ``"fallback"`` for users the models were not trained on (they get
the most popular items). The output is written to a hidden sibling
(``.<name>.partial``), flushed to the disk and renamed over ``output`` only
when every user is written, so readers never see a partial file and a failed
run leaves the previous ``output`` (or none) in place.

Importing this module imports only the standard library and the package's
errors; tqdm (a core dependency) is imported when a run starts.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from two_stage_rec._atomic import fsync_directory
from two_stage_rec.errors import InvalidInputError

if TYPE_CHECKING:
    from two_stage_rec.assembly import AssembledRecommender
    from two_stage_rec.recommender import Recommendation
    from two_stage_rec.types import Filter

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "BatchScoringResult",
    "count_user_ids",
    "read_user_ids",
    "recommendation_record",
    "score_users",
]

DEFAULT_CHUNK_SIZE = 256
"""Users per ``recommend_batch`` call: large enough to amortise the Python path, small enough for steady progress."""


@dataclass(frozen=True)
class BatchScoringResult:
    """What a batch scoring run wrote.

    Attributes:
        output: the JSON Lines file written.
        users: lines written (one per input user id, duplicates included).
        from_model: users answered by the models (``"source": "model"``).
        fallback: users the models were not trained on, given the most
            popular items (``"source": "fallback"``).
        seconds: wall-clock time of the scoring and writing (not of loading
            the bundle).
    """

    output: Path
    users: int
    from_model: int
    fallback: int
    seconds: float

    @property
    def users_per_second(self) -> float:
        """Users scored per second of :attr:`seconds` (0.0 for an instantaneous run)."""
        return self.users / self.seconds if self.seconds > 0 else 0.0


def read_user_ids(path: str | os.PathLike[str], *, source: str | None = None) -> Iterator[str]:
    """User ids from a text file, one per line, read lazily (memory holds one line).

    Blank lines and lines starting with ``#`` are skipped; ids are stripped of
    surrounding white space. The file is opened when the first id is asked for.

    Args:
        path: a UTF-8 text file.
        source: how error messages name the file (default ``"users file <path>"``).

    Yields:
        Each user id, in file order.

    Raises:
        InvalidInputError: the file cannot be read, is not UTF-8, or holds no id
            (raised when the iterator is exhausted without yielding one).
    """
    named = source or f"users file {path}"
    found = False
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                user_id = line.strip()
                if user_id and not user_id.startswith("#"):
                    found = True
                    yield user_id
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"cannot read {named}: {exc}") from exc
    if not found:
        raise InvalidInputError(f"{named} holds no user ids")


def count_user_ids(path: str | os.PathLike[str], *, source: str | None = None) -> int:
    """How many ids :func:`read_user_ids` yields for ``path`` (one streaming pass; for a progress bar's total).

    Raises:
        InvalidInputError: as :func:`read_user_ids`.
    """
    return sum(1 for _ in read_user_ids(path, source=source))


def recommendation_record(user_id: str, recommendations: Sequence[Recommendation]) -> dict[str, Any]:
    """The output object of one user: ``{"user_id", "items": [{"item_id", "score"}, ...], "source"}``.

    Scores are rounded to 6 decimals (higher is better); ``source`` is
    ``"fallback"`` when the popularity fallback answered, else ``"model"``.
    """
    fallback = bool(recommendations) and recommendations[0].source == "fallback"
    return {
        "user_id": user_id,
        "items": [{"item_id": rec.item_id, "score": round(float(rec.score), 6)} for rec in recommendations],
        "source": "fallback" if fallback else "model",
    }


@dataclass(frozen=True)
class _ScoredChunk:
    """One chunk's output lines (UTF-8, newline-terminated) and its counts."""

    data: bytes
    from_model: int
    fallback: int


def _score_chunk(
    served: AssembledRecommender,
    users: Sequence[str],
    *,
    k: int,
    candidates: int,
    include_seen: bool,
    filter: Filter | None,
) -> _ScoredChunk:
    """Score one chunk of users and render their lines (shared by the local and the Dask runs)."""
    results = served.recommend_batch(users, k=k, candidates=candidates, filter=filter, include_seen=include_seen)
    lines = []
    fallback = 0
    for user_id, recommendations in zip(users, results, strict=True):
        record = recommendation_record(user_id, recommendations)
        fallback += record["source"] == "fallback"
        lines.append(json.dumps(record, ensure_ascii=False))
    lines.append("")
    return _ScoredChunk("\n".join(lines).encode("utf-8"), len(users) - fallback, fallback)


def _chunks(users: Iterable[str], size: int) -> Iterator[list[str]]:
    """Consecutive lists of ``size`` ids (the last one shorter), reading ``users`` lazily."""
    chunk: list[str] = []
    for user_id in users:
        chunk.append(user_id)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _check_options(*, k: int, candidates: int, chunk_size: int) -> None:
    """Refuse settings that cannot work, before anything is read or written.

    Raises:
        InvalidInputError: ``k`` or ``chunk_size`` below 1, or ``candidates < k``.
    """
    if k < 1:
        raise InvalidInputError(f"k must be at least 1, got {k}")
    if candidates < k:
        raise InvalidInputError(f"candidates ({candidates}) must be at least k ({k})")
    if chunk_size < 1:
        raise InvalidInputError(f"chunk_size must be at least 1, got {chunk_size}")


def _first_and_rest(users: Iterable[str]) -> Iterator[str]:
    """``users`` with its first id already read, so an empty or unreadable input fails before any output exists.

    Raises:
        InvalidInputError: ``users`` yields nothing (or :func:`read_user_ids`' errors).
    """
    iterator = iter(users)
    try:
        first = next(iterator)
    except StopIteration:
        raise InvalidInputError("no user ids to score") from None

    def chained() -> Iterator[str]:
        yield first
        yield from iterator

    return chained()


def _check_output(output: str | os.PathLike[str]) -> Path:
    """The output path, refused when it is a directory.

    Raises:
        InvalidInputError: ``output`` is an existing directory.
    """
    target = Path(output)
    if target.is_dir():
        raise InvalidInputError(f"output {target} is a directory; give a file name such as recs.jsonl")
    return target


@contextmanager
def _partial_output(output: Path) -> Iterator[BinaryIO]:
    """Write ``.<name>.partial`` beside ``output``; on success fsync it and rename it over ``output``.

    If the block raises, the partial file is deleted and ``output`` is left as it was.
    The parent directory is created when missing.
    """
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.partial")
    try:
        with open(partial, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, output)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    fsync_directory(output.parent)


def score_users(
    served: AssembledRecommender,
    users: Iterable[str],
    output: str | os.PathLike[str],
    *,
    k: int = 10,
    candidates: int = 50,
    include_seen: bool = False,
    filter: Filter | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: bool = False,
    total: int | None = None,
) -> BatchScoringResult:
    """Write one JSON line per user to ``output``, streaming ``users`` in chunks.

    Memory holds one chunk of users and their recommendations at a time;
    ``users`` may be any iterable, e.g. :func:`read_user_ids` or a generator.
    The lines do not depend on ``chunk_size`` except through floating-point
    batch effects; :mod:`two_stage_rec.distributed` aligns its chunks with
    this function's so that its output is identical.

    Args:
        served: the recommender (from :func:`~two_stage_rec.assembly.assemble`).
        users: user ids, in output order; unknown users get the fallback.
        output: the JSON Lines file to write (replaced atomically when it exists).
        k: recommendations per user.
        candidates: items retrieved before reranking (>= k).
        include_seen: also recommend items the user interacted with in training.
        filter: metadata filter (Pinecone filter language) for every user.
        chunk_size: users per ``recommend_batch`` call.
        progress: show a tqdm progress bar.
        total: the number of users, for the progress bar (e.g. :func:`count_user_ids`).

    Returns:
        The counts and timing of the run.

    Raises:
        InvalidInputError: bad settings, no user ids, an unreadable users file,
            ``output`` is a directory, or a bad filter; ``output`` is left untouched.
    """
    _check_options(k=k, candidates=candidates, chunk_size=chunk_size)
    target = _check_output(output)
    stream = _first_and_rest(users)
    from tqdm.auto import tqdm

    written = from_model = fallback = 0
    start = time.perf_counter()
    with (
        _partial_output(target) as handle,
        tqdm(total=total, unit="user", desc="recommending", disable=not progress) as bar,
    ):
        for chunk in _chunks(stream, chunk_size):
            scored = _score_chunk(served, chunk, k=k, candidates=candidates, include_seen=include_seen, filter=filter)
            handle.write(scored.data)
            written += len(chunk)
            from_model += scored.from_model
            fallback += scored.fallback
            bar.update(len(chunk))
    return BatchScoringResult(
        output=target, users=written, from_model=from_model, fallback=fallback, seconds=time.perf_counter() - start
    )

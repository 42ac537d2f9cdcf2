"""The MovieLens-100K movie catalogue (``u.item``), keyed by movie id.

Titles are not unique (1,664 distinct titles for 1,682 ids), so the id is the
key everywhere and the title is metadata.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from two_stage_rec.datasets._records import IdRecords, read_records
from two_stage_rec.errors import DatasetError, InvalidInputError
from two_stage_rec.types import MetadataValue

__all__ = ["GENRES", "Movie", "Movies", "read_movies"]

GENRES: tuple[str, ...] = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
"""The 19 genres in the order of ``u.genre`` (and of the flags in ``u.item``)."""

# u.item dates look like "01-Jan-1995". Parsed by hand because strptime's %b
# follows the process locale and would fail under e.g. de_DE.
_MONTHS = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1
    )
}
_TITLE_YEAR = re.compile(r"\((\d{4})\)")
_FIELDS = 5 + len(GENRES)


@dataclass(frozen=True, slots=True)
class Movie:
    """One movie of the catalogue.

    Attributes:
        id: MovieLens movie id (1..1682).
        title: title exactly as in ``u.item`` (decoded from latin-1), e.g.
            ``"Misérables, Les (1995)"``; not unique across ids.
        release_date: theatrical (or video) release date, ``None`` when unknown.
        imdb_url: IMDb link, ``None`` when absent.
        genres: genre names in :data:`GENRES` order.
    """

    id: int
    title: str
    release_date: dt.date | None
    imdb_url: str | None
    genres: tuple[str, ...]

    @property
    def id_str(self) -> str:
        """The id as the string models and stores key items by (``"50"``)."""
        return str(self.id)

    @property
    def year(self) -> int | None:
        """The film's year: the last ``(YYYY)`` in the title, else the release year.

        The title's year is preferred because some release dates are re-releases
        (``"Contempt (Mépris, Le) (1963)"`` is dated 1997).
        """
        years = _TITLE_YEAR.findall(self.title)
        if years:
            return int(years[-1])
        return self.release_date.year if self.release_date is not None else None

    def metadata(self) -> dict[str, MetadataValue]:
        """Vector-store metadata: ``{"title", "genres"}`` and ``"year"`` when known.

        Pinecone-compatible: strings, an int and a list of strings, no nulls.
        """
        metadata: dict[str, MetadataValue] = {"title": self.title, "genres": list(self.genres)}
        year = self.year
        if year is not None:
            metadata["year"] = year
        return metadata


@dataclass(frozen=True, slots=True, eq=False, repr=False)  # keep IdRecords.__repr__: n, not 1,682 records
class Movies(IdRecords[Movie]):
    """The catalogue, in file order, with lookup by id.

    ``movies[50]`` and ``movies["50"]`` return a :class:`Movie` (an unknown id
    raises :class:`UnknownKeyError`); iteration yields movies in file (= id)
    order; ``ids_str()`` gives the keys to index items by.
    """

    kind: ClassVar[str] = "movie"

    def titles(self) -> list[str]:
        """Titles, file order (duplicates included: they are different movies)."""
        return [movie.title for movie in self.records]

    def genre_matrix(self) -> npt.NDArray[np.bool_]:
        """One-hot genres, bool (m, 19), columns in :data:`GENRES` order."""
        column_of = {name: column for column, name in enumerate(GENRES)}
        matrix = np.zeros((len(self.records), len(GENRES)), dtype=np.bool_)
        for row, movie in enumerate(self.records):
            matrix[row, [column_of[g] for g in movie.genres]] = True
        return matrix

    def metadata(self) -> list[dict[str, MetadataValue]]:
        """Per-movie metadata aligned with :meth:`ids_str` (for ``Recommender.index_items``)."""
        return [movie.metadata() for movie in self.records]

    def metadata_by_id(self) -> dict[str, dict[str, MetadataValue]]:
        """Movie id string -> metadata (for ``PopularityFallback(metadata=...)``)."""
        return {movie.id_str: movie.metadata() for movie in self.records}


def _parse_date(text: str) -> dt.date | None:
    if not text:
        return None
    day, month, year = text.split("-")
    return dt.date(int(year), _MONTHS[month], int(day))


def _parse_movie(line: str) -> Movie:
    fields = line.split("|")
    if len(fields) != _FIELDS:
        raise ValueError(f"{len(fields)} fields, expected {_FIELDS}")
    movie_id, title, release, _video_release, url, *flags = fields
    if any(flag not in ("0", "1") for flag in flags):
        raise ValueError("genre flags must be 0 or 1")
    return Movie(
        id=int(movie_id),
        title=title,
        release_date=_parse_date(release),
        imdb_url=url or None,
        genres=tuple(name for name, flag in zip(GENRES, flags, strict=True) if flag == "1"),
    )


def read_movies(path: Path) -> Movies:
    """Parse ``u.item``: ``id|title|release date|video release date|IMDb URL|19 genre flags``.

    The file is latin-1 (nine titles have accents); it is decoded as such.

    Raises:
        DatasetError: a line is malformed (the message names file and line).
    """
    records = read_records(path, _parse_movie, "movie")
    try:
        return Movies(tuple(records))
    except InvalidInputError as exc:
        raise DatasetError(f"{path}: {exc}") from exc

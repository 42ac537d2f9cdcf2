"""The MovieLens-100K users (``u.user``): age, gender, occupation, zip code."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from two_stage_rec.datasets._records import IdRecords, read_records
from two_stage_rec.errors import DatasetError, InvalidInputError, UnknownKeyError, UnknownUserError

__all__ = ["User", "Users", "read_users"]


@dataclass(frozen=True, slots=True)
class User:
    """One user's demographics.

    Attributes:
        id: MovieLens user id (1..943).
        age: age in years.
        gender: ``"M"`` or ``"F"``.
        occupation: one of the 21 names in ``u.occupation`` (e.g. ``"administrator"``).
        zip_code: as written; a string, because some are Canadian (``"T8H1N"``).
    """

    id: int
    age: int
    gender: str
    occupation: str
    zip_code: str

    @property
    def id_str(self) -> str:
        """The id as the string models key users by (``"42"``)."""
        return str(self.id)


@dataclass(frozen=True, slots=True, eq=False, repr=False)  # keep IdRecords.__repr__: n, not 1,682 records
class Users(IdRecords[User]):
    """All users, in file order, with lookup by id (``users[42]`` or ``users["42"]``).

    An unknown id raises :class:`UnknownUserError`.
    """

    kind: ClassVar[str] = "user"

    def _unknown(self, record_id: str) -> UnknownKeyError:
        return UnknownUserError([record_id])


def _parse_user(line: str) -> User:
    fields = line.split("|")
    if len(fields) != 5:
        raise ValueError(f"{len(fields)} fields, expected 5")
    user_id, age, gender, occupation, zip_code = fields
    return User(id=int(user_id), age=int(age), gender=gender, occupation=occupation, zip_code=zip_code)


def read_users(path: Path) -> Users:
    """Parse ``u.user``: ``id|age|gender|occupation|zip``.

    Raises:
        DatasetError: a line is malformed (the message names file and line).
    """
    records = read_records(path, _parse_user, "user")
    try:
        return Users(tuple(records))
    except InvalidInputError as exc:
        raise DatasetError(f"{path}: {exc}") from exc

"""The MovieLens-100K users (``u.user``): age, gender, occupation, zip code."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from two_stage_rec.datasets._ids import as_int_id
from two_stage_rec.errors import DatasetError, InvalidInputError, UnknownUserError

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


@dataclass(frozen=True, slots=True, eq=False)
class Users:
    """All users, in file order, with lookup by id (``users[42]`` or ``users["42"]``)."""

    records: tuple[User, ...]
    _row_of: dict[int, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        row_of = {user.id: row for row, user in enumerate(self.records)}
        if len(row_of) != len(self.records):
            raise InvalidInputError("user ids must be unique")
        object.__setattr__(self, "_row_of", row_of)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[User]:
        return iter(self.records)

    def __contains__(self, user_id: object) -> bool:
        return as_int_id(user_id) in self._row_of

    def __getitem__(self, user_id: int | str) -> User:
        key = as_int_id(user_id)
        row = None if key is None else self._row_of.get(key)
        if row is None:
            raise UnknownUserError([str(user_id)])
        return self.records[row]

    def __repr__(self) -> str:
        return f"Users(n={len(self)})"

    @property
    def ids(self) -> npt.NDArray[np.int32]:
        """User ids, int32 (u,), file order."""
        return np.array([user.id for user in self.records], dtype=np.int32)

    def ids_str(self) -> list[str]:
        """User ids as strings, file order."""
        return [user.id_str for user in self.records]


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
    records = []
    with path.open(encoding="latin-1", newline="\n") as handle:
        for number, line in enumerate(handle, start=1):
            line = line.rstrip("\r\n")
            if not line:
                continue
            try:
                records.append(_parse_user(line))
            except ValueError as exc:
                raise DatasetError(f"{path}, line {number}: cannot parse user ({exc}): {line[:80]!r}") from exc
    if not records:
        raise DatasetError(f"{path} holds no users")
    try:
        return Users(tuple(records))
    except InvalidInputError as exc:
        raise DatasetError(f"{path}: {exc}") from exc

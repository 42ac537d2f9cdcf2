"""An ordered, read-only collection of records looked up by MovieLens id.

:class:`~two_stage_rec.datasets.movies.Movies` and
:class:`~two_stage_rec.datasets.users.Users` differ only in their records and
in the error an unknown id raises, so both build on this one class.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Generic, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from two_stage_rec.datasets._ids import as_int_id
from two_stage_rec.errors import DatasetError, InvalidInputError, UnknownKeyError


class _HasId(Protocol):
    @property
    def id(self) -> int: ...

    @property
    def id_str(self) -> str: ...


R = TypeVar("R", bound=_HasId)


@dataclass(frozen=True, slots=True, eq=False)
class IdRecords(Generic[R]):
    """Records in file order; ``records[42]`` and ``records["42"]`` look up by id.

    Subclasses set :attr:`kind` (used in messages) and may override
    :meth:`_unknown` to raise a more specific :class:`UnknownKeyError`.
    """

    kind: ClassVar[str] = "record"

    records: tuple[R, ...]
    _row_of: dict[int, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        row_of = {record.id: row for row, record in enumerate(self.records)}
        if len(row_of) != len(self.records):
            raise InvalidInputError(f"{self.kind} ids must be unique")
        object.__setattr__(self, "_row_of", row_of)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[R]:
        return iter(self.records)

    def __contains__(self, record_id: object) -> bool:
        return as_int_id(record_id) in self._row_of

    def __getitem__(self, record_id: int | str) -> R:
        key = as_int_id(record_id)
        row = None if key is None else self._row_of.get(key)
        if row is None:
            raise self._unknown(str(record_id))
        return self.records[row]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n={len(self)})"

    def _unknown(self, record_id: str) -> UnknownKeyError:
        return UnknownKeyError([record_id], what=f"{self.kind} id")

    @property
    def ids(self) -> npt.NDArray[np.int32]:
        """Ids, int32 (n,), file order."""
        return np.array([record.id for record in self.records], dtype=np.int32)

    def ids_str(self) -> list[str]:
        """Ids as strings (``"42"``), file order: the keys models and stores use."""
        return [record.id_str for record in self.records]


def read_records(path: Path, parse: Callable[[str], R], kind: str) -> list[R]:
    """Parse every non-empty line of a latin-1 MovieLens file with ``parse``.

    Raises:
        DatasetError: a line is malformed (naming file and line), or the file holds none.
    """
    records: list[R] = []
    with path.open(encoding="latin-1", newline="\n") as handle:
        for number, line in enumerate(handle, start=1):
            line = line.rstrip("\r\n")
            if not line:
                continue
            try:
                records.append(parse(line))
            except (ValueError, KeyError) as exc:
                raise DatasetError(f"{path}, line {number}: cannot parse {kind} ({exc}): {line[:80]!r}") from exc
    if not records:
        raise DatasetError(f"{path} holds no {kind}s")
    return records

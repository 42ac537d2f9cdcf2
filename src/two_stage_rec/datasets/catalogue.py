"""The item catalogue: every item id that can be recommended, with its metadata.

Metadata is what a vector store keeps beside each vector and filters on
(title, genres, year, price, ...), so its values follow the store contract:
``str``, ``int``, ``float``, ``bool`` or a list of ``str``. A missing value is
simply an absent key (the filter language treats absent fields as defined).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from two_stage_rec.errors import DatasetError, DuplicateIdError, InvalidIdError, InvalidInputError
from two_stage_rec.types import Metadata, MetadataValue
from two_stage_rec.validation import check_metadata

__all__ = ["Catalogue"]

FORMAT_VERSION = 1


@dataclass(frozen=True, eq=False)
class Catalogue:
    """Items in a fixed order, each with its metadata.

    Build with :meth:`from_records`. ``item_id in catalogue``, ``len(catalogue)``
    and iteration over ids work as for a sequence of ids.

    Attributes:
        item_ids: the ids, unique and non-empty, in catalogue order.
        metadata: one mapping per id, same order (empty when the item has none).
    """

    item_ids: tuple[str, ...]
    metadata: tuple[dict[str, MetadataValue], ...]
    _row: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.item_ids) != len(self.metadata):
            raise InvalidInputError(f"{len(self.metadata)} metadata entries for {len(self.item_ids)} items")
        row: dict[str, int] = {}
        for position, item_id in enumerate(self.item_ids):
            if not isinstance(item_id, str) or not item_id.strip():
                raise InvalidIdError(f"catalogue item {position} has an empty or non-string id {item_id!r}")
            if item_id in row:
                raise DuplicateIdError([item_id])
            row[item_id] = position
        object.__setattr__(self, "_row", row)

    @classmethod
    def from_records(cls, item_ids: Sequence[str | int], metadata: Sequence[Metadata] | None = None) -> Catalogue:
        """Build a catalogue, checking ids and metadata.

        Args:
            item_ids: unique ids; integers become their decimal string.
            metadata: one mapping per id (values: str, int, float, bool, list
                of str), or None for none.

        Raises:
            DuplicateIdError: an id occurs twice (all duplicates are named).
            InvalidIdError: an id is empty, or neither a string nor an integer.
            InvalidMetadataError: a metadata value has an unsupported type, is
                null or is not finite.
        """
        for position, item_id in enumerate(item_ids):
            # As in Interactions: 42.0 would silently become "42.0" and match no event of item "42".
            if not isinstance(item_id, str | int | np.integer) or isinstance(item_id, bool):
                raise InvalidIdError(f"catalogue item {position} has id {item_id!r}; ids must be strings or integers")
        ids = [str(item_id) for item_id in item_ids]
        if len(set(ids)) != len(ids):
            raise DuplicateIdError(sorted(item_id for item_id, n in Counter(ids).items() if n > 1))
        checked = check_metadata(ids, metadata) if metadata is not None else [{} for _ in ids]
        return cls(item_ids=tuple(ids), metadata=tuple(checked or []))

    def __len__(self) -> int:
        return len(self.item_ids)

    def __iter__(self) -> Iterator[str]:
        return iter(self.item_ids)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._row

    def __repr__(self) -> str:
        fields = sorted({key for entry in self.metadata for key in entry})
        return f"Catalogue(items={len(self)}, metadata={fields})"

    def metadata_of(self, item_id: str) -> dict[str, MetadataValue]:
        """The metadata of one item (a copy).

        Raises:
            InvalidInputError: the item is not in the catalogue.
        """
        row = self._row.get(item_id)
        if row is None:
            raise InvalidInputError(f"item {item_id!r} is not in the catalogue")
        return dict(self.metadata[row])

    def metadata_by_id(self) -> dict[str, dict[str, MetadataValue]]:
        """Item id -> metadata, for :class:`~two_stage_rec.cold_start.PopularityFallback`."""
        return dict(zip(self.item_ids, self.metadata, strict=True))

    def label(self, item_id: str) -> str:
        """A human-readable name: the ``title`` or ``name`` metadata field, else the id."""
        row = self._row.get(item_id)
        entry = self.metadata[row] if row is not None else {}
        for key in ("title", "name"):
            value = entry.get(key)
            if isinstance(value, str) and value:
                return value
        return item_id

    def subset(self, item_ids: Sequence[str]) -> Catalogue:
        """The given items (in the order given), with their metadata.

        Raises:
            InvalidInputError: an id is not in the catalogue.
        """
        missing = [item_id for item_id in item_ids if item_id not in self._row]
        if missing:
            raise InvalidInputError(f"{len(missing)} ids are not in the catalogue, e.g. {missing[:5]}")
        return Catalogue(
            item_ids=tuple(item_ids), metadata=tuple(self.metadata[self._row[item_id]] for item_id in item_ids)
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write as JSON Lines: a header line, then ``{"id": ..., "metadata": {...}}`` per item."""
        target = Path(path)
        with open(target, "w", encoding="utf-8") as handle:
            handle.write(json.dumps({"format": "two_stage_rec.catalogue", "version": FORMAT_VERSION}) + "\n")
            for item_id, entry in zip(self.item_ids, self.metadata, strict=True):
                handle.write(json.dumps({"id": item_id, "metadata": entry}, ensure_ascii=False) + "\n")
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Catalogue:
        """Read a file written by :meth:`save`.

        Raises:
            DatasetError: the file is missing or not a catalogue file (the line is named).
        """
        source = Path(path)
        try:
            lines = source.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise DatasetError(f"cannot read catalogue {source}: {exc}") from exc
        try:
            header = json.loads(lines[0]) if lines else {}
        except ValueError as exc:
            raise DatasetError(f"{source}:1 is not JSON: {exc}") from exc
        if not isinstance(header, dict) or header.get("format") != "two_stage_rec.catalogue":
            raise DatasetError(f"{source} is not a two_stage_rec catalogue file")
        if header.get("version") != FORMAT_VERSION:
            raise DatasetError(f"{source} has version {header.get('version')}; this library reads {FORMAT_VERSION}")
        ids: list[str] = []
        metadata: list[Mapping[str, MetadataValue]] = []
        for number, line in enumerate(lines[1:], start=2):
            try:
                record = json.loads(line)
                ids.append(str(record["id"]))
                metadata.append(record.get("metadata", {}))
            except (ValueError, KeyError, TypeError) as exc:
                raise DatasetError(f"{source}:{number} is not a catalogue record: {exc}") from exc
        try:
            return cls.from_records(ids, metadata)
        except InvalidInputError as exc:
            raise DatasetError(f"{source}: {exc}") from exc

"""Read users' own files — CSV, TSV, Parquet — or pandas DataFrames into :class:`Interactions` and a :class:`Catalogue`.

A :class:`ColumnMapping` says which column holds what; only ``user`` and
``item`` are required, and a role left ``None`` is not read (no ``rating``
means implicit feedback)::

    # events.csv                               # products.parquet: sku, title, year, tags (list of str)
    # customer,sku,stars,when
    # c-1f9a,sku-88,4.5,2024-01-05T10:00:00Z
    # c-1f9a,007,3,2024-01-06

    from two_stage_rec.datasets import ColumnMapping, read_catalogue, read_interactions

    catalogue = read_catalogue("products.parquet", item_id_column="sku")   # other columns: metadata
    log = read_interactions(
        "events.csv",
        columns=ColumnMapping(user="customer", item="sku", rating="stars", timestamp="when"),
        catalogue=catalogue,          # events naming items not in it: refused, or dropped with
        on_unknown_items="drop",      # on_unknown_items="drop" (a warning says how many)
    )

The format follows the file name: ``.csv``, ``.csv.gz``, ``.tsv`` (tab
separated) or ``.parquet`` / ``.pq``. How values are read:

* Ids are strings exactly as written (``"007"`` stays ``"007"``; ``"NA"`` is an
  id, not a missing value). Integer id columns become decimal strings; a float
  id column (pandas' way of holding integers with gaps) is accepted when every
  value is a whole number.
* Ratings and weights are finite numbers; weights are positive.
* Timestamps are Unix seconds (numbers) or date-times: datetime columns, or ISO
  8601 text such as ``2024-01-05`` or ``2024-01-05T10:00:00+02:00``. Times
  without an offset are taken as UTC. Other date formats are refused rather
  than guessed (is ``01/05/2024`` the 1st of May or the 5th of January?).
* In CSV, only an empty field is a missing value.

Every refusal is an :class:`~two_stage_rec.errors.InvalidInputError` naming the
file (or the ``source`` of a DataFrame), the column and the place: ``line N``
of a CSV file (the header is line 1) or ``row i`` (0-based position) of a
Parquet file or DataFrame. A file that is missing or cannot be read at all
raises :class:`~two_stage_rec.errors.DatasetError`.

pandas and pyarrow come with the ``data`` extra (``pip install
"two-stage-rec[data]"``) and are imported only when a reader runs.
"""

from __future__ import annotations

import csv
import gzip
import logging
import math
import os
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal, NoReturn, TextIO

import numpy as np
import numpy.typing as npt

from two_stage_rec._optional import require
from two_stage_rec.datasets.catalogue import Catalogue
from two_stage_rec.datasets.interactions import Interactions, UnknownItemPolicy
from two_stage_rec.errors import (
    DatasetError,
    DuplicateIdError,
    InvalidIdError,
    InvalidInputError,
    InvalidMetadataError,
)
from two_stage_rec.types import MetadataValue

__all__ = [
    "ColumnMapping",
    "catalogue_from_dataframe",
    "interactions_from_dataframe",
    "read_catalogue",
    "read_interactions",
]

_log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

_SUPPORTED = ".csv, .csv.gz, .tsv, .parquet, .pq"
_LARGEST_INT64 = 2.0**63
_SHOWN = 5
"""How many duplicate ids one message lists."""


@dataclass(frozen=True, slots=True)
class ColumnMapping:
    """Which column of a file or DataFrame holds each field of an interaction.

    Attributes:
        user: the user id column.
        item: the item id column.
        rating: the explicit rating column, or None for implicit feedback.
        timestamp: the time column (Unix seconds or date-times), or None.
        weight: the event weight column (positive numbers), or None.

    Raises:
        InvalidInputError: a name is empty or one column is given two roles.
    """

    user: str = "user_id"
    item: str = "item_id"
    rating: str | None = None
    timestamp: str | None = None
    weight: str | None = None

    def __post_init__(self) -> None:
        roles = self.roles()
        for role, column in roles.items():
            if not isinstance(column, str) or not column:
                raise InvalidInputError(f"ColumnMapping.{role} must be a non-empty column name, got {column!r}")
        by_column: dict[str, list[str]] = {}
        for role, column in roles.items():
            by_column.setdefault(column, []).append(role)
        for column, shared in by_column.items():
            if len(shared) > 1:
                raise InvalidInputError(f"ColumnMapping gives column {column!r} two roles: {' and '.join(shared)}")

    def roles(self) -> dict[str, str]:
        """Role (``"user"``, ``"item"``, ``"rating"``, ...) -> column name, for the roles that are set."""
        named = {
            "user": self.user,
            "item": self.item,
            "rating": self.rating,
            "timestamp": self.timestamp,
            "weight": self.weight,
        }
        return {role: column for role, column in named.items() if column is not None}


def read_interactions(
    path: PathLike,
    *,
    columns: ColumnMapping | None = None,
    catalogue: Catalogue | None = None,
    on_unknown_items: UnknownItemPolicy = "raise",
) -> Interactions:
    """Read an interaction log from a CSV, TSV or Parquet file.

    Only the mapped columns are read, so a file may carry others (session,
    device, ...) at no cost.

    Args:
        path: a ``.csv``, ``.csv.gz``, ``.tsv``, ``.parquet`` or ``.pq`` file
            with a header row (CSV/TSV).
        columns: which column holds what; default ``user_id`` and ``item_id``,
            implicit feedback, no timestamps or weights.
        catalogue: when given, events whose item is not in it are handled by
            ``on_unknown_items``.
        on_unknown_items: ``"raise"`` refuses the file, saying how many events
            and items are unknown; ``"drop"`` removes those events and logs a
            warning with the count.

    Returns:
        The events in file order.

    Raises:
        MissingDependencyError: pandas or pyarrow is not installed (extra ``data``).
        DatasetError: the file is missing or cannot be read.
        InvalidInputError: an unsupported extension, an empty file, a missing
            column, an empty id, a rating that is not a finite number, a
            weight that is not positive, a time that cannot be read, or
            unknown items under ``"raise"``; the message names the file, the
            column and the line (CSV) or row (Parquet).
    """
    mapping = columns if columns is not None else ColumnMapping()
    _check_policy(on_unknown_items)
    table = _TableFile.of(path)
    roles = mapping.roles()
    wanted = {column: f"ColumnMapping.{role}" for role, column in roles.items()}
    text = [column for role, column in roles.items() if role in ("user", "item")]
    numbers = [column for role, column in roles.items() if role in ("rating", "weight")]
    times = [mapping.timestamp] if mapping.timestamp is not None else []
    frame = table.read(wanted, text=text, numbers=numbers, times=times, only_wanted=True)
    return _interactions(frame, mapping, catalogue, on_unknown_items, table.origin)


def interactions_from_dataframe(
    frame: Any,
    *,
    columns: ColumnMapping | None = None,
    catalogue: Catalogue | None = None,
    on_unknown_items: UnknownItemPolicy = "raise",
    source: str = "DataFrame",
) -> Interactions:
    """Build an interaction log from a pandas DataFrame; same rules as :func:`read_interactions`.

    Args:
        frame: a ``pandas.DataFrame``; rows are read by position, whatever its index.
        columns: which column holds what (see :class:`ColumnMapping`).
        catalogue: when given, events whose item is not in it are handled by
            ``on_unknown_items``.
        on_unknown_items: ``"raise"`` or ``"drop"``, as in :func:`read_interactions`.
        source: how messages name the frame (e.g. the table it came from).

    Raises:
        MissingDependencyError: pandas is not installed (extra ``data``).
        InvalidInputError: as for :func:`read_interactions`, naming ``source``,
            the column and ``row i`` (0-based position).
    """
    mapping = columns if columns is not None else ColumnMapping()
    _check_policy(on_unknown_items)
    origin = _Origin(source)
    _check_frame(frame, {column: f"ColumnMapping.{role}" for role, column in mapping.roles().items()}, origin)
    return _interactions(frame, mapping, catalogue, on_unknown_items, origin)


def read_catalogue(
    path: PathLike,
    *,
    item_id_column: str = "item_id",
    metadata_columns: Sequence[str] | None = None,
    list_columns: Sequence[str] = (),
    list_separator: str = "|",
) -> Catalogue:
    """Read a catalogue from a CSV, TSV or Parquet file: one row per item.

    Metadata values follow the column types: integer, float, boolean and text
    columns give ``int``, ``float``, ``bool`` and ``str`` values (CSV columns
    keep integers with gaps as ``int``), Parquet lists of strings give
    ``list[str]``. A missing value (empty field, null, NaN, blank text) leaves
    the key out for that item. Text is never split unless asked to::

        read_catalogue("movies.csv", list_columns=["genres"])   # "Comedy|Drama" -> ["Comedy", "Drama"]

    Args:
        path: a ``.csv``, ``.csv.gz``, ``.tsv``, ``.parquet`` or ``.pq`` file.
        item_id_column: the column holding the unique item ids.
        metadata_columns: the columns to keep as metadata; default every
            column but the id column.
        list_columns: text columns to split on ``list_separator`` into
            ``list[str]`` (parts are stripped; empty parts are dropped).
        list_separator: the separator of ``list_columns``.

    Returns:
        The items in file order.

    Raises:
        MissingDependencyError: pandas or pyarrow is not installed (extra ``data``).
        DatasetError: the file is missing or cannot be read.
        DuplicateIdError: an id occurs twice (the ids and their lines or rows
            are named).
        InvalidIdError: an id is empty.
        InvalidMetadataError: a value that metadata cannot hold (a date-time,
            a list holding non-strings, infinity).
        InvalidInputError: an unsupported extension, an empty file or a missing
            column; every message names the file, the column and the line or row.
    """
    names, lists = _catalogue_columns(item_id_column, metadata_columns, list_columns, list_separator)
    table = _TableFile.of(path)
    wanted = _catalogue_wanted(item_id_column, names, lists)
    frame = table.read(
        wanted,
        text=[item_id_column, *lists],
        only_wanted=metadata_columns is not None,
        nullable=True,  # an integer column with gaps stays integer instead of becoming float
    )
    return _catalogue(frame, item_id_column, names, lists, list_separator, table.origin)


def catalogue_from_dataframe(
    frame: Any,
    *,
    item_id_column: str = "item_id",
    metadata_columns: Sequence[str] | None = None,
    list_columns: Sequence[str] = (),
    list_separator: str = "|",
    source: str = "DataFrame",
) -> Catalogue:
    """Build a catalogue from a pandas DataFrame; same rules as :func:`read_catalogue`.

    Metadata types follow the frame's dtypes (a float column holding whole
    numbers gives ``float`` values: convert it with ``astype("Int64")`` first
    to get ``int``).

    Args:
        frame: a ``pandas.DataFrame``, one row per item; rows are read by position.
        item_id_column: the column holding the unique item ids.
        metadata_columns: the columns to keep as metadata; default every
            column but the id column.
        list_columns: text columns to split on ``list_separator`` into ``list[str]``.
        list_separator: the separator of ``list_columns``.
        source: how messages name the frame.

    Raises:
        MissingDependencyError: pandas is not installed (extra ``data``).
        DuplicateIdError, InvalidIdError, InvalidMetadataError, InvalidInputError:
            as for :func:`read_catalogue`, naming ``source``, the column and
            ``row i`` (0-based position).
    """
    names, lists = _catalogue_columns(item_id_column, metadata_columns, list_columns, list_separator)
    origin = _Origin(source)
    _check_frame(frame, _catalogue_wanted(item_id_column, names, lists), origin)
    return _catalogue(frame, item_id_column, names, lists, list_separator, origin)


# --- where rows come from -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Origin:
    """A table's name in messages, and how to name its rows there."""

    name: str
    csv_path: Path | None = None
    separator: str = ","
    compressed: bool = False

    def at(self, row: int) -> str:
        """``line N`` of a CSV file, else ``row i``."""
        return self.places([row])[0]

    def places(self, rows: Sequence[int]) -> list[str]:
        """:meth:`at` for several rows, reading a CSV file once."""
        if self.csv_path is None:
            return [f"row {row}" for row in rows]
        lines = self._csv_lines(rows)
        return [f"line {lines.get(row, row + 2)}" for row in rows]

    def _csv_lines(self, rows: Sequence[int]) -> dict[int, int]:
        # pandas numbers data rows, not lines: it skips blank lines and a quoted field may
        # span lines. Only an error message needs the line, so the file is scanned again
        # here, up to the last row asked for, rather than tracking lines on the fast path.
        assert self.csv_path is not None
        wanted = set(rows)
        last = max(wanted)
        found: dict[int, int] = {}
        try:
            with _open_text(self.csv_path, compressed=self.compressed) as handle:
                reader = csv.reader(handle, delimiter=self.separator)
                row = -1  # the header
                previous = 0
                for record in reader:
                    if not _blank(record):
                        if row in wanted:
                            found[row] = previous + 1
                        if row >= last:
                            break
                        row += 1
                    previous = reader.line_num
        except (OSError, csv.Error):
            pass  # the caller falls back to "data row i is line i + 2"
        return found


def _open_text(path: Path, *, compressed: bool) -> TextIO:
    if compressed:
        return gzip.open(path, "rt", encoding="utf-8", errors="replace", newline="")
    return open(path, encoding="utf-8", errors="replace", newline="")


def _blank(record: list[str]) -> bool:
    # The lines pandas skips: empty, or only spaces (a quoted "" is a row of missing values).
    return not record or (len(record) == 1 and record[0] != "" and not record[0].strip())


@dataclass(frozen=True, slots=True)
class _TableFile:
    """A file whose format follows its extension."""

    path: Path
    kind: Literal["csv", "parquet"]
    separator: str = ","
    compressed: bool = False

    @classmethod
    def of(cls, path: PathLike) -> _TableFile:
        file = Path(path)
        name = file.name.lower()
        if name.endswith(".csv.gz"):
            table = cls(file, "csv", ",", compressed=True)
        elif name.endswith(".csv"):
            table = cls(file, "csv", ",")
        elif name.endswith(".tsv"):
            table = cls(file, "csv", "\t")
        elif name.endswith((".parquet", ".pq")):
            table = cls(file, "parquet")
        else:
            raise InvalidInputError(f"{file}: cannot tell the format from the name; supported are {_SUPPORTED}")
        if not file.is_file():
            raise DatasetError(f"{file} does not exist or is not a file")
        return table

    @property
    def origin(self) -> _Origin:
        if self.kind == "csv":
            return _Origin(str(self.path), self.path, self.separator, self.compressed)
        return _Origin(str(self.path))

    def read(
        self,
        wanted: Mapping[str, str],
        *,
        text: Collection[str],
        numbers: Collection[str] = (),
        times: Collection[str] = (),
        only_wanted: bool,
        nullable: bool = False,
    ) -> Any:
        """The table as a DataFrame, after checking that the ``wanted`` columns exist.

        Args:
            wanted: column -> the option that names it (for the missing-column message).
            text: CSV columns read as text, unconverted (ids).
            numbers: CSV columns read as float64.
            times: CSV columns read as float64 when the first row holds a number
                there (Unix seconds), else as text (date-times).
            only_wanted: read only the wanted columns (else all of them).
            nullable: pandas' nullable dtypes (Int64 keeps integers with gaps).
        """
        present, first_row = self._peek()
        _check_columns(present, wanted, _Origin(str(self.path)), hint=self._separator_hint(present))
        selected = list(wanted) if only_wanted else None
        if self.kind == "csv":
            # Seconds parsed by pandas' C reader are many times faster than text through to_numeric.
            seconds = [column for column in times if first_row is None or _looks_numeric(first_row[column])]
            text = [*text, *(column for column in times if column not in seconds)]
            frame = self._read_csv(selected, text, [*numbers, *seconds], nullable)
        else:
            frame = self._read_parquet(selected, nullable)
        if len(frame) == 0:
            raise InvalidInputError(
                f"{self.path} has no data rows" + (" (only a header)" if self.kind == "csv" else "")
            )
        return frame

    def _peek(self) -> tuple[list[Any], Any]:
        """The column names, and (CSV) the first data row as text, or None when there is none."""
        if self.kind == "parquet":
            parquet = require("pyarrow.parquet", extra="data", package="pyarrow")
            arrow = require("pyarrow", extra="data")
            try:
                return list(parquet.read_schema(self.path).names), None
            except (OSError, arrow.ArrowException) as exc:
                raise DatasetError(f"cannot read {self.path} as Parquet: {exc}") from exc
        head = self._pandas_csv(nrows=1, dtype=object)
        return list(head.columns), (head.iloc[0] if len(head) else None)

    def _read_csv(
        self, selected: list[str] | None, text: Collection[str], numbers: Collection[str], nullable: bool
    ) -> Any:
        pd = _pandas()
        # object, not str: pandas 3 converts a str column value by value (several times slower),
        # and the ids become a numpy string array right after anyway.
        as_text: dict[str, Any] = {column: object for column in text}
        options: dict[str, Any] = {"dtype_backend": "numpy_nullable"} if nullable else {}
        try:
            frame = self._pandas_csv(
                usecols=selected,
                dtype=as_text | {column: "float64" for column in numbers},
                floats=bool(numbers),
                **options,
            )
        except _NumberParseError:
            # A number column holds something else ("abc", "NaN"): read it again as text, so that
            # the column check can name the value and its line (pandas' message names neither).
            frame = self._pandas_csv(usecols=selected, dtype=as_text | dict.fromkeys(numbers, object), **options)
        if not isinstance(frame.index, pd.RangeIndex):
            # pandas takes a first data row with one field more than the header for a row
            # label column and shifts every value one column left; refuse instead.
            raise InvalidInputError(
                f"{self.path}, {self.origin.at(0)}: the row has one field more than the header names columns; "
                "check the separator and quoting"
            )
        return frame

    def _pandas_csv(self, *, floats: bool = False, **options: Any) -> Any:
        """``pandas.read_csv`` with this file's format; pandas' errors become ours."""
        pd = _pandas()
        try:
            return pd.read_csv(
                self.path,
                sep=self.separator,
                compression="gzip" if self.compressed else None,
                encoding="utf-8",
                # Only an empty field is missing: "NA", "null" or "None" may well be ids or titles.
                keep_default_na=False,
                na_values=[""],
                **options,
            )
        except pd.errors.EmptyDataError as exc:
            raise InvalidInputError(f"{self.path} is empty: no header and no data rows") from exc
        except pd.errors.ParserError as exc:
            raise InvalidInputError(f"{self.path} is not valid {self._format_name}: {str(exc).strip()}") from exc
        except UnicodeDecodeError as exc:
            raise DatasetError(f"{self.path} is not UTF-8 text: {exc}") from exc
        except OSError as exc:
            raise DatasetError(f"cannot read {self.path}: {exc}") from exc
        except ValueError as exc:
            if floats:  # what is left is a value float64 could not hold
                raise _NumberParseError from exc
            raise InvalidInputError(f"{self.path}: {exc}") from exc

    def _read_parquet(self, selected: list[str] | None, nullable: bool) -> Any:
        pd = _pandas()
        arrow = require("pyarrow", extra="data")
        options: dict[str, Any] = {"dtype_backend": "numpy_nullable"} if nullable else {}
        try:
            return pd.read_parquet(self.path, columns=selected, engine="pyarrow", **options)
        except (OSError, arrow.ArrowException) as exc:
            raise DatasetError(f"cannot read {self.path} as Parquet: {exc}") from exc

    @property
    def _format_name(self) -> str:
        return "TSV" if self.separator == "\t" else "CSV"

    def _separator_hint(self, present: Sequence[Any]) -> str:
        if self.kind != "csv" or len(present) != 1:
            return ""
        header = str(present[0])
        others = [name for sep, name in ((",", "commas"), ("\t", "tabs"), (";", "semicolons")) if sep in header]
        if not others:
            return ""
        used = "tabs" if self.separator == "\t" else "commas"
        return f"; the header looks separated by {others[0]}, but {self._format_name} files are split on {used}"


class _NumberParseError(Exception):
    """pandas could not read a float64 column; the caller reads it again as text."""


def _pandas() -> ModuleType:
    return require("pandas", extra="data")


def _check_frame(frame: Any, wanted: Mapping[str, str], origin: _Origin) -> None:
    pd = _pandas()
    if not isinstance(frame, pd.DataFrame):
        raise InvalidInputError(f"{origin.name}: expected a pandas DataFrame, got {type(frame).__name__}")
    _check_columns(list(frame.columns), wanted, origin)
    repeated = [column for column in wanted if int((frame.columns == column).sum()) > 1]
    if repeated:
        raise InvalidInputError(f"{origin.name} has several columns named {repeated[0]!r}")
    if len(frame) == 0:
        raise InvalidInputError(f"{origin.name} has no rows")


def _check_columns(present: Sequence[Any], wanted: Mapping[str, str], origin: _Origin, hint: str = "") -> None:
    available = set(present)
    for column, option in wanted.items():
        if column not in available:
            listed = ", ".join(repr(name) for name in present)
            raise InvalidInputError(
                f"{origin.name} has no column {column!r} (named by {option}); its columns are: {listed}{hint}"
            )


# --- interactions -----------------------------------------------------------------------------------


def _check_policy(policy: str) -> None:
    if policy not in ("drop", "raise"):
        raise InvalidInputError(f"on_unknown_items must be 'drop' or 'raise', got {policy!r}")


def _interactions(
    frame: Any,
    mapping: ColumnMapping,
    catalogue: Catalogue | None,
    on_unknown_items: UnknownItemPolicy,
    origin: _Origin,
) -> Interactions:
    user_ids = _id_strings(frame[mapping.user], mapping.user, origin)
    item_ids = _id_strings(frame[mapping.item], mapping.item, origin)
    ratings = weights = timestamps = None
    if mapping.rating is not None:
        ratings = _finite_numbers(frame[mapping.rating], mapping.rating, origin, "ratings must be finite numbers")
    if mapping.weight is not None:
        weights = _positive_numbers(frame[mapping.weight], mapping.weight, origin)
    if mapping.timestamp is not None:
        timestamps = _unix_seconds(frame[mapping.timestamp], mapping.timestamp, origin)
    try:
        log = Interactions.from_arrays(
            user_ids=user_ids, item_ids=item_ids, ratings=ratings, timestamps=timestamps, weights=weights
        )
    except InvalidInputError as exc:  # the column checks above should leave nothing for these to find
        raise InvalidInputError(f"{origin.name}: {exc}") from exc
    if catalogue is None:
        return log
    try:
        kept, dropped = log.restrict_items(catalogue.item_ids, unknown=on_unknown_items, source=origin.name)
    except InvalidInputError as exc:
        if origin.csv_path is None:
            raise InvalidInputError(f"{exc} (column {mapping.item!r})") from exc
        first = int(np.flatnonzero(~np.isin(log.item_ids, np.asarray(catalogue.item_ids, dtype=np.str_)))[0])
        raise InvalidInputError(f"{exc} (column {mapping.item!r}; data row {first} is {origin.at(first)})") from exc
    if dropped:
        _log.warning(
            "%s: dropped %d of %d interactions whose item (column %r) is not in the catalogue",
            origin.name,
            dropped,
            len(log),
            mapping.item,
        )
    return kept


def _plain(series: Any) -> Any:
    """A categorical column as its values, so the dtype checks below see what it holds."""
    pd = _pandas()
    return series.astype(object) if isinstance(series.dtype, pd.CategoricalDtype) else series


def _first(mask: npt.NDArray[np.bool_]) -> int:
    return int(np.flatnonzero(mask)[0])


def _shown(series: Any, row: int, origin: _Origin) -> str:
    """A cell as a message shows it: ``empty`` for a CSV gap, else its repr (numpy scalars as Python)."""
    value = series.iloc[row]
    if origin.csv_path is not None and bool(_pandas().isna(value)):
        return "empty"
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value)


def _refuse(
    series: Any, column: str, row: int, origin: _Origin, rule: str, error: type[InvalidInputError] = InvalidInputError
) -> NoReturn:
    raise error(f"{origin.name}, {origin.at(row)}: column {column!r} is {_shown(series, row, origin)}; {rule}")


def _id_strings(series: Any, column: str, origin: _Origin) -> npt.NDArray[np.str_]:
    """Ids as a numpy string array, integers as decimal strings; refuses gaps, blanks and non-ids."""
    types = _pandas().api.types
    series = _plain(series)
    rule = "ids must be non-empty strings or integers"
    missing = series.isna().to_numpy(dtype=bool)
    if missing.any():
        _refuse(series, column, _first(missing), origin, rule, InvalidIdError)
    dtype = series.dtype
    ids: npt.NDArray[np.str_]
    if types.is_object_dtype(dtype):
        values = series.to_numpy(dtype=object)
        if types.infer_dtype(values, skipna=False) not in ("string", "integer"):
            # Only a hand-built frame mixes kinds in one column, so a loop is affordable here.
            ok = [isinstance(v, str) or (isinstance(v, int | np.integer) and not isinstance(v, bool)) for v in values]
            if not all(ok):
                _refuse(series, column, ok.index(False), origin, rule, InvalidIdError)
        ids = values.astype(np.str_)
    elif types.is_bool_dtype(dtype):
        _refuse(series, column, 0, origin, f"{rule} (the column holds booleans)", InvalidIdError)
    elif types.is_integer_dtype(dtype):
        ids = series.to_numpy(dtype=np.uint64 if types.is_unsigned_integer_dtype(dtype) else np.int64).astype(np.str_)
    elif types.is_float_dtype(dtype):
        # pandas holds an integer column with gaps as float; accept it when every value is whole.
        numbers = series.to_numpy(dtype=np.float64)
        bad = ~np.isfinite(numbers) | (np.abs(numbers) >= _LARGEST_INT64) | (numbers != np.floor(numbers))
        if bad.any():
            _refuse(series, column, _first(bad), origin, f"{rule} (a float id must be a whole number)", InvalidIdError)
        ids = numbers.astype(np.int64).astype(np.str_)
    elif types.is_string_dtype(dtype):
        ids = series.to_numpy(dtype=object).astype(np.str_)
    else:
        _refuse(series, column, 0, origin, f"{rule} (the column holds {dtype} values)", InvalidIdError)
    blank = (np.char.str_len(ids) == 0) | np.char.isspace(ids)  # isspace: non-empty and all blanks
    if blank.any():
        _refuse(series, column, _first(blank), origin, rule, InvalidIdError)
    return ids


def _as_numbers(series: Any) -> Any:
    """A column as a numeric Series; what is not a number becomes NaN."""
    pd = _pandas()
    if pd.api.types.is_numeric_dtype(series.dtype):
        return series
    try:
        return pd.to_numeric(series, errors="coerce")
    except (TypeError, ValueError):
        # Objects to_numeric refuses outright (lists, dicts) in a hand-built frame: one at a time.
        return pd.Series([_number_or_nan(value) for value in series.tolist()], dtype=np.float64)


def _number_or_nan(value: object) -> float:
    if isinstance(value, int | float | str | np.number | np.bool_):
        try:
            return float(value)
        except ValueError:
            return math.nan
    return math.nan


def _finite_numbers(series: Any, column: str, origin: _Origin, rule: str) -> npt.NDArray[np.float64]:
    series = _plain(series)
    if _pandas().api.types.is_datetime64_any_dtype(series.dtype):
        _refuse(series, column, 0, origin, f"{rule} (the column holds date-times)")
    numbers: npt.NDArray[np.float64] = _as_numbers(series).to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(numbers)
    if bad.any():
        _refuse(series, column, _first(bad), origin, rule)
    return numbers


def _positive_numbers(series: Any, column: str, origin: _Origin) -> npt.NDArray[np.float64]:
    rule = "weights must be positive finite numbers"
    numbers = _finite_numbers(series, column, origin, rule)
    not_positive = numbers <= 0
    if not_positive.any():
        _refuse(_plain(series), column, _first(not_positive), origin, rule)
    return numbers


def _unix_seconds(series: Any, column: str, origin: _Origin) -> npt.NDArray[np.int64]:
    """Times as int64 Unix seconds: numbers are seconds; date-times and ISO 8601 text are converted (UTC)."""
    pd = _pandas()
    types = pd.api.types
    series = _plain(series)
    rule = "timestamps must be Unix seconds or ISO 8601 date-times such as 2024-01-05T10:00:00Z"
    if types.is_bool_dtype(series.dtype):
        _refuse(series, column, 0, origin, f"{rule} (the column holds booleans)")
    if types.is_datetime64_any_dtype(series.dtype):
        return _datetime_seconds(series, pd.to_datetime(series, utc=True), column, origin, rule)
    if not types.is_numeric_dtype(series.dtype):
        # Text (or objects): the first value decides whether the column holds seconds or date-times.
        missing = series.isna().to_numpy(dtype=bool)
        first = _first(~missing) if not missing.all() else 0
        if not _looks_numeric(series.iloc[first]):
            try:
                parsed = pd.to_datetime(series, utc=True, errors="coerce", format="ISO8601")
            except (TypeError, ValueError):  # objects to_datetime refuses outright: one at a time
                parsed = pd.Series([_datetime_or_nat(value) for value in series.tolist()], dtype="datetime64[ns, UTC]")
            return _datetime_seconds(series, parsed, column, origin, rule)
    numbers = _as_numbers(series)
    if types.is_integer_dtype(numbers.dtype) and not numbers.isna().any():
        exact: npt.NDArray[np.int64] = numbers.to_numpy(dtype=np.int64)  # no float round trip: exact
        return exact
    values = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(values) | (np.abs(values) >= _LARGEST_INT64)
    if bad.any():
        _refuse(series, column, _first(bad), origin, rule)
    seconds: npt.NDArray[np.int64] = np.floor(values).astype(np.int64)
    return seconds


def _looks_numeric(value: object) -> bool:
    if isinstance(value, bool | np.bool_):
        return False
    if isinstance(value, int | float | np.number):
        return True
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return False
        return True
    return False


def _datetime_or_nat(value: object) -> Any:
    pd = _pandas()
    try:
        return pd.to_datetime(value, utc=True, format="ISO8601")
    except (TypeError, ValueError):
        return pd.NaT


def _datetime_seconds(series: Any, parsed: Any, column: str, origin: _Origin, rule: str) -> npt.NDArray[np.int64]:
    pd = _pandas()
    bad = parsed.isna().to_numpy(dtype=bool)
    if bad.any():
        _refuse(series, column, _first(bad), origin, rule)
    # Floor division: a time before 1970 with a fraction of a second rounds down, like datetime64[s].
    seconds: npt.NDArray[np.int64] = ((parsed - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy(
        dtype=np.int64
    )
    return seconds


# --- catalogue --------------------------------------------------------------------------------------


def _catalogue_columns(
    item_id_column: str,
    metadata_columns: Sequence[str] | None,
    list_columns: Sequence[str],
    list_separator: str,
) -> tuple[list[str] | None, list[str]]:
    """Check the options; returns (metadata columns or None for "all but the id", list columns)."""
    for option, value in (("metadata_columns", metadata_columns), ("list_columns", list_columns)):
        if isinstance(value, str):
            raise InvalidInputError(f"{option} must be a sequence of column names, not the string {value!r}")
    if not isinstance(item_id_column, str) or not item_id_column:
        raise InvalidInputError(f"item_id_column must be a non-empty column name, got {item_id_column!r}")
    if not isinstance(list_separator, str) or not list_separator:
        raise InvalidInputError(f"list_separator must be a non-empty string, got {list_separator!r}")
    names = None if metadata_columns is None else list(dict.fromkeys(metadata_columns))
    lists = list(dict.fromkeys(list_columns))
    for column in lists:
        if column == item_id_column:
            raise InvalidInputError(f"list_columns names the id column {column!r}")
        if names is not None and column not in names:
            raise InvalidInputError(f"list_columns names {column!r}, which is not in metadata_columns")
    return names, lists


def _catalogue_wanted(item_id_column: str, names: list[str] | None, lists: list[str]) -> dict[str, str]:
    wanted = {item_id_column: "item_id_column"}
    for column in names or ():
        wanted.setdefault(column, "metadata_columns")
    for column in lists:
        wanted.setdefault(column, "list_columns")
    return wanted


def _catalogue(
    frame: Any,
    item_id_column: str,
    names: list[str] | None,
    lists: list[str],
    list_separator: str,
    origin: _Origin,
) -> Catalogue:
    pd = _pandas()
    if names is None:
        names = [column for column in frame.columns if column != item_id_column]
    for column in names:
        if not isinstance(column, str) or not column:
            raise InvalidMetadataError(f"{origin.name}: column {column!r} cannot be a metadata key (not a string)")
    ids = _id_strings(frame[item_id_column], item_id_column, origin)
    repeated = pd.Series(ids).duplicated(keep=False).to_numpy(dtype=bool)
    if repeated.any():
        raise _duplicates(ids, np.flatnonzero(repeated), item_id_column, origin)
    metadata: list[dict[str, MetadataValue]] = [{} for _ in range(len(ids))]
    for column in names:
        split = list_separator if column in lists else None
        for row, value in _metadata_values(frame[column], column, origin, split):
            metadata[row][column] = value
    try:
        return Catalogue.from_records(ids.tolist(), metadata)
    except InvalidInputError as exc:  # the checks above should leave nothing for these to find
        raise InvalidInputError(f"{origin.name}: {exc}") from exc


def _duplicates(
    ids: npt.NDArray[np.str_], rows: npt.NDArray[np.intp], column: str, origin: _Origin
) -> DuplicateIdError:
    groups: dict[str, list[int]] = {}
    for row in rows.tolist():
        groups.setdefault(str(ids[row]), []).append(row)
    shown = list(groups.items())[:_SHOWN]
    places = iter(origin.places([row for _, group in shown for row in group]))
    listed = "; ".join(f"{item_id!r} ({', '.join(next(places) for _ in group)})" for item_id, group in shown)
    more = f"; and {len(groups) - _SHOWN} more" if len(groups) > _SHOWN else ""
    error = DuplicateIdError(list(groups))
    # DuplicateIdError's own message cannot name the file; keep the type (and .duplicates)
    # so that callers can still catch it, with a message that points at the rows.
    count = f"{len(groups)} ids" if len(groups) > 1 else "an id"
    error.args = (f"{origin.name}: column {column!r} repeats {count}: {listed}{more}; ids must be unique",)
    return error


def _metadata_values(
    series: Any, column: str, origin: _Origin, split: str | None
) -> Iterator[tuple[int, MetadataValue]]:
    """(row, value) for each present value of a metadata column, as a plain Python value."""
    missing = series.isna().to_numpy(dtype=bool)
    convert: Callable[[object], MetadataValue | None] = (
        (lambda value: _split_value(value, split)) if split is not None else _metadata_value
    )
    for row, value in enumerate(series.tolist()):
        if missing[row]:
            continue
        try:
            converted = convert(value)
        except _Unsupported as exc:
            raise InvalidMetadataError(
                f"{origin.name}, {origin.at(row)}: column {column!r} is {_shown(series, row, origin)}; {exc}"
            ) from None
        if converted is not None:
            yield row, converted


class _Unsupported(Exception):
    """A metadata value of a kind the catalogue cannot hold; the message says why."""


_ALLOWED = "metadata values must be str, int, float, bool or a list of str"


def _metadata_value(value: object) -> MetadataValue | None:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _Unsupported("metadata numbers must be finite")
        return value
    if isinstance(value, list | tuple | np.ndarray):
        return _string_list(value)
    raise _Unsupported(
        f"{_ALLOWED}, not {type(value).__name__} (convert the column, or leave it out with metadata_columns=)"
    )


def _string_list(values: Sequence[object] | npt.NDArray[Any]) -> list[str]:
    items = list(values)
    if not all(isinstance(item, str) for item in items):
        kinds = sorted({type(item).__name__ for item in items if not isinstance(item, str)})
        raise _Unsupported(f"{_ALLOWED}; this list holds {', '.join(kinds)}")
    return [str(item) for item in items]


def _split_value(value: object, separator: str) -> MetadataValue | None:
    if isinstance(value, list | tuple | np.ndarray):
        return _string_list(value)  # already a list (a Parquet list column): nothing to split
    if not isinstance(value, str):
        raise _Unsupported(f"list_columns split text, and this is {type(value).__name__}")
    parts = [part.strip() for part in value.split(separator)]
    kept = [part for part in parts if part]
    return kept or None

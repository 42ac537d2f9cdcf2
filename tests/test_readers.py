"""two_stage_rec.datasets.readers: users' CSV, TSV, Parquet files and DataFrames in, Interactions and Catalogue out.

Every test writes a small file into tmp_path. Error tests check that the
message names the file (or the DataFrame's source), the column and the place:
``line N`` of a CSV file (the header is line 1), ``row i`` of Parquet and
DataFrames.
"""

from __future__ import annotations

import gzip
import logging
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

pd = pytest.importorskip("pandas", reason="the readers need the 'data' extra (pandas)")

from two_stage_rec.datasets import (  # noqa: E402
    Catalogue,
    ColumnMapping,
    catalogue_from_dataframe,
    interactions_from_dataframe,
    read_catalogue,
    read_interactions,
)
from two_stage_rec.errors import (  # noqa: E402
    DatasetError,
    DuplicateIdError,
    InvalidIdError,
    InvalidInputError,
    InvalidMetadataError,
    MissingDependencyError,
)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def unix(text: str) -> int:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp())


def parquet(path: Path, frame: object) -> Path:
    pytest.importorskip("pyarrow", reason="Parquet needs the 'data' extra (pyarrow)")
    frame.to_parquet(path, index=False)  # type: ignore[attr-defined]
    return path


# --- interactions: what is read ---------------------------------------------------------------------


def test_csv_implicit_feedback_keeps_string_ids_as_written(tmp_path: Path) -> None:
    path = write(tmp_path / "events.csv", "user_id,item_id\nc-1f9a,sku-88\n007,0042\nNA,null\n")

    log = read_interactions(path)

    assert log.user_ids.tolist() == ["c-1f9a", "007", "NA"]
    assert log.item_ids.tolist() == ["sku-88", "0042", "null"]
    assert log.ratings is None and log.timestamps is None and log.weights is None


def test_csv_explicit_feedback_with_column_mapping_iso_times_and_weights(tmp_path: Path) -> None:
    path = write(
        tmp_path / "events.csv",
        "when,customer,sku,stars,w,device\n"
        "2024-01-05T10:00:00Z,c-1f9a,sku-88,4.5,1,phone\n"
        "2024-01-05T12:00:00+02:00,c-1f9a,007,3,5,web\n"
        "2024-01-06,u2,sku-88,1,0.5,web\n",
    )
    mapping = ColumnMapping(user="customer", item="sku", rating="stars", timestamp="when", weight="w")

    log = read_interactions(path, columns=mapping)

    assert log.user_ids.tolist() == ["c-1f9a", "c-1f9a", "u2"]
    assert log.item_ids.tolist() == ["sku-88", "007", "sku-88"]
    assert log.ratings is not None and log.ratings.tolist() == [4.5, 3.0, 1.0]
    assert log.weights is not None and log.weights.tolist() == [1.0, 5.0, 0.5]
    assert log.timestamps is not None
    assert log.timestamps.tolist() == [
        unix("2024-01-05T10:00:00+00:00"),
        unix("2024-01-05T10:00:00+00:00"),  # 12:00 at +02:00 is 10:00 UTC
        unix("2024-01-06T00:00:00+00:00"),  # no offset: UTC
    ]


def test_tsv_and_gzipped_csv_with_unix_seconds(tmp_path: Path) -> None:
    tsv = write(tmp_path / "events.tsv", "user_id\titem_id\tts\nu1\ti1\t1700000000\nu2\ti2\t1700000060\n")
    packed = tmp_path / "events.csv.gz"
    with gzip.open(packed, "wt", encoding="utf-8") as handle:
        handle.write("user_id,item_id,ts\nu1,i1,1700000000\nu2,i2,1700000060\n")
    mapping = ColumnMapping(timestamp="ts")

    for path in (tsv, packed):
        log = read_interactions(path, columns=mapping)
        assert log.item_ids.tolist() == ["i1", "i2"]
        assert log.timestamps is not None and log.timestamps.tolist() == [1700000000, 1700000060]


def test_parquet_integer_ids_become_decimal_strings_and_datetimes_become_seconds(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "user_id": np.array([1, 2], dtype=np.int64),
            "item_id": ["sku-88", "0042"],
            "rating": np.array([4.0, 2.5], dtype=np.float32),
            "at": pd.to_datetime(["2024-01-05T10:00:00", "2024-01-06T00:00:00"]),
        }
    )
    path = parquet(tmp_path / "events.parquet", frame)

    log = read_interactions(path, columns=ColumnMapping(rating="rating", timestamp="at"))

    assert log.user_ids.tolist() == ["1", "2"]
    assert log.item_ids.tolist() == ["sku-88", "0042"]
    assert log.ratings is not None and log.ratings.tolist() == [4.0, 2.5]
    assert log.timestamps is not None
    assert log.timestamps.tolist() == [unix("2024-01-05T10:00:00"), unix("2024-01-06T00:00:00")]


def test_pq_extension_is_parquet(tmp_path: Path) -> None:
    path = parquet(tmp_path / "events.pq", pd.DataFrame({"user_id": ["u"], "item_id": ["i"]}))
    assert read_interactions(path).item_ids.tolist() == ["i"]


def test_dataframe_input_with_whole_float_ids_and_a_custom_source() -> None:
    frame = pd.DataFrame(
        {"user": [10.0, 11.0], "item": pd.Categorical(["a", "b"]), "t": [1_700_000_000, 1_700_000_001]},
        index=[5, 9],  # rows are read by position, whatever the index
    )

    log = interactions_from_dataframe(
        frame, columns=ColumnMapping(user="user", item="item", timestamp="t"), source="events table"
    )

    assert log.user_ids.tolist() == ["10", "11"]
    assert log.item_ids.tolist() == ["a", "b"]
    assert log.timestamps is not None and log.timestamps.tolist() == [1_700_000_000, 1_700_000_001]


# --- interactions: what is refused, and where --------------------------------------------------------


def test_missing_column_names_it_and_lists_the_columns_present(tmp_path: Path) -> None:
    path = write(tmp_path / "events.csv", "customer,sku\nu1,i1\n")

    with pytest.raises(InvalidInputError) as caught:
        read_interactions(path, columns=ColumnMapping(user="customer", item="product"))

    message = str(caught.value)
    assert "events.csv" in message and "'product'" in message
    assert "'customer', 'sku'" in message


def test_semicolon_separated_csv_gets_a_hint(tmp_path: Path) -> None:
    path = write(tmp_path / "events.csv", "user_id;item_id\nu1;i1\n")

    with pytest.raises(InvalidInputError, match="semicolons"):
        read_interactions(path)


def test_empty_id_names_the_line_counting_blank_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "events.csv", "user_id,item_id\nu1,i1\n\nu2,i2\n,i3\n")

    with pytest.raises(InvalidIdError) as caught:
        read_interactions(path)

    message = str(caught.value)
    assert "events.csv" in message and "'user_id'" in message and "line 5" in message and "empty" in message


@pytest.mark.parametrize(("value", "shown"), [("abc", "'abc'"), ("NaN", "'NaN'"), ("inf", "inf"), ("", "empty")])
def test_rating_that_is_not_a_finite_number_names_file_column_and_line(tmp_path: Path, value: str, shown: str) -> None:
    path = write(tmp_path / "ratings.csv", f"user_id,item_id,stars\nu1,i1,4\nu2,i2,{value}\nu3,i3,5\n")

    with pytest.raises(InvalidInputError) as caught:
        read_interactions(path, columns=ColumnMapping(rating="stars"))

    message = str(caught.value)
    assert "ratings.csv" in message and "'stars'" in message and "line 3" in message
    assert f"is {shown};" in message


def test_quoted_field_spanning_lines_is_counted_in_line_numbers(tmp_path: Path) -> None:
    path = write(tmp_path / "events.csv", 'user_id,item_id,r\n"u\n1",i1,4\nu2,i2,x\n')

    with pytest.raises(InvalidInputError, match="line 4"):
        read_interactions(path, columns=ColumnMapping(rating="r"))


@pytest.mark.parametrize("weight", ["0", "-1.5"])
def test_weight_that_is_not_positive_is_refused(tmp_path: Path, weight: str) -> None:
    path = write(tmp_path / "events.tsv", f"user_id\titem_id\tweight\nu1\ti1\t1\nu1\ti2\t{weight}\n")

    with pytest.raises(InvalidInputError) as caught:
        read_interactions(path, columns=ColumnMapping(weight="weight"))

    message = str(caught.value)
    assert "events.tsv" in message and "'weight'" in message and "line 3" in message and "positive" in message


@pytest.mark.parametrize("value", ["yesterday", "05/01/2024", ""])
def test_unreadable_timestamp_is_refused(tmp_path: Path, value: str) -> None:
    path = write(tmp_path / "events.csv", f"user_id,item_id,ts\nu1,i1,2024-01-05\nu2,i2,{value}\n")

    with pytest.raises(InvalidInputError) as caught:
        read_interactions(path, columns=ColumnMapping(timestamp="ts"))

    message = str(caught.value)
    assert "events.csv" in message and "'ts'" in message and "line 3" in message and "ISO 8601" in message


def test_text_seconds_with_a_word_among_them_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "events.csv", "user_id,item_id,ts\nu1,i1,1700000000\nu2,i2,soon\n")

    with pytest.raises(InvalidInputError, match=r"events\.csv, line 3: column 'ts' is 'soon'"):
        read_interactions(path, columns=ColumnMapping(timestamp="ts"))


def test_parquet_errors_name_the_row(tmp_path: Path) -> None:
    frame = pd.DataFrame({"user_id": ["u1", "u2", "u3"], "item_id": [1.0, np.nan, 3.0]})
    path = parquet(tmp_path / "events.parquet", frame)

    with pytest.raises(InvalidIdError) as caught:
        read_interactions(path)

    message = str(caught.value)
    assert "events.parquet" in message and "'item_id'" in message and "row 1" in message


def test_dataframe_errors_name_the_source_and_the_row() -> None:
    frame = pd.DataFrame({"user_id": ["u1", "u2"], "item_id": [1.0, 2.5], "r": [1.0, 2.0]})

    with pytest.raises(InvalidIdError, match=r"clicks, row 1: column 'item_id' is 2\.5"):
        interactions_from_dataframe(frame, source="clicks")
    frame["item_id"] = ["i1", "i2"]
    frame.loc[0, "r"] = np.inf
    with pytest.raises(InvalidInputError, match=r"clicks, row 0: column 'r' is inf; ratings must be finite"):
        interactions_from_dataframe(frame, columns=ColumnMapping(rating="r"), source="clicks")


def test_empty_file_header_only_missing_file_and_unknown_extension(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"empty\.csv is empty"):
        read_interactions(write(tmp_path / "empty.csv", ""))
    with pytest.raises(InvalidInputError, match=r"header\.csv has no data rows"):
        read_interactions(write(tmp_path / "header.csv", "user_id,item_id\n"))
    with pytest.raises(InvalidInputError, match="has no rows"):
        interactions_from_dataframe(pd.DataFrame({"user_id": [], "item_id": []}))
    with pytest.raises(DatasetError, match=r"absent\.csv"):
        read_interactions(tmp_path / "absent.csv")
    with pytest.raises(InvalidInputError, match=r"\.csv, \.csv\.gz, \.tsv, \.parquet, \.pq"):
        read_interactions(write(tmp_path / "events.json", "[]"))


def test_row_with_too_many_fields_is_refused_not_shifted(tmp_path: Path) -> None:
    first_row = write(tmp_path / "items.csv", "item_id,title\ni1,Toy Story, The\ni2,Heat\n")
    later_row = write(tmp_path / "later.csv", "item_id,title\ni2,Heat\ni1,Toy Story, The\n")

    with pytest.raises(InvalidInputError, match=r"items\.csv, line 2: the row has one field more"):
        read_catalogue(first_row)
    with pytest.raises(InvalidInputError, match=r"later\.csv is not valid CSV.*line 3"):
        read_catalogue(later_row)


def test_column_mapping_refuses_one_column_in_two_roles() -> None:
    with pytest.raises(InvalidInputError, match="'id' two roles: user and item"):
        ColumnMapping(user="id", item="id")
    with pytest.raises(InvalidInputError, match="rating"):
        ColumnMapping(rating="")


# --- unknown items -----------------------------------------------------------------------------------


def test_unknown_items_raise_by_default_with_counts(tmp_path: Path) -> None:
    catalogue = Catalogue.from_records(["i1", "i2"])
    path = write(tmp_path / "events.csv", "user_id,item_id\nu1,i1\nu1,ghost\nu2,ghost\nu2,phantom\n")

    with pytest.raises(InvalidInputError) as caught:
        read_interactions(path, catalogue=catalogue)

    message = str(caught.value)
    assert "events.csv" in message and "'item_id'" in message and "line 3" in message
    assert "3 interaction(s) name 2 item(s)" in message


def test_unknown_items_dropped_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    catalogue = Catalogue.from_records(["i1", "i2"])
    path = write(tmp_path / "events.csv", "user_id,item_id\nu1,i1\nu1,ghost\nu2,i2\nu2,phantom\n")

    with caplog.at_level(logging.WARNING, logger="two_stage_rec.datasets.readers"):
        log = read_interactions(path, catalogue=catalogue, on_unknown_items="drop")

    assert log.item_ids.tolist() == ["i1", "i2"]
    assert "dropped 2 of 4 interactions" in caplog.text and "events.csv" in caplog.text


def test_unknown_items_in_a_dataframe_name_the_source() -> None:
    frame = pd.DataFrame({"user_id": ["u1", "u2"], "item_id": ["i1", "gone"]})

    with pytest.raises(InvalidInputError, match=r"^clicks: 1 interaction\(s\) name 1 item\(s\)"):
        interactions_from_dataframe(frame, catalogue=Catalogue.from_records(["i1"]), source="clicks")
    with pytest.raises(InvalidInputError, match="on_unknown_items"):
        interactions_from_dataframe(frame, on_unknown_items="keep")  # type: ignore[arg-type]


# --- catalogue ---------------------------------------------------------------------------------------


def test_csv_catalogue_lists_gaps_and_types(tmp_path: Path) -> None:
    path = write(
        tmp_path / "movies.csv",
        "item_id,title,year,price,adult,genres\n"
        "007,Dr. No,1962,9.5,false,Action|Thriller\n"
        "m-2,NA,,,true,\n"
        "m-3,Heat,1995,4.25,,Crime| Drama ||\n",
    )

    catalogue = read_catalogue(path, list_columns=["genres"])

    assert catalogue.item_ids == ("007", "m-2", "m-3")
    assert catalogue.metadata_of("007") == {
        "title": "Dr. No",
        "year": 1962,
        "price": 9.5,
        "adult": False,
        "genres": ["Action", "Thriller"],
    }
    assert catalogue.metadata_of("m-2") == {"title": "NA", "adult": True}  # "NA" is a title, not a gap
    assert catalogue.metadata_of("m-3") == {"title": "Heat", "year": 1995, "price": 4.25, "genres": ["Crime", "Drama"]}
    year = catalogue.metadata_of("007")["year"]
    assert type(year) is int  # an integer column with a gap stays int, as a Python int


def test_text_is_not_split_unless_asked(tmp_path: Path) -> None:
    path = write(tmp_path / "movies.tsv", "item_id\tgenres\ttitle\nm1\tAction|Comedy\tA|B\n")

    assert read_catalogue(path).metadata_of("m1") == {"genres": "Action|Comedy", "title": "A|B"}
    only = read_catalogue(path, metadata_columns=["genres"], list_columns=["genres"])
    assert only.metadata_of("m1") == {"genres": ["Action", "Comedy"]}


def test_parquet_catalogue_with_list_column_and_nulls(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "sku": [88, 42, 7],
            "tags": [["red", "sale"], None, []],
            "stock": pd.array([3, None, 0], dtype="Int64"),
            "title": ["Lamp", None, ""],
        }
    )
    path = parquet(tmp_path / "products.parquet", frame)

    catalogue = read_catalogue(path, item_id_column="sku")

    assert catalogue.item_ids == ("88", "42", "7")
    assert catalogue.metadata_of("88") == {"tags": ["red", "sale"], "stock": 3, "title": "Lamp"}
    assert catalogue.metadata_of("42") == {}
    assert catalogue.metadata_of("7") == {"tags": [], "stock": 0}
    assert type(catalogue.metadata_of("88")["stock"]) is int


def test_dataframe_catalogue_converts_numpy_scalars() -> None:
    frame = pd.DataFrame(
        {
            "item_id": ["a", "b"],
            "n": np.array([1, 2], dtype=np.int32),
            "x": np.array([0.5, np.nan], dtype=np.float32),
            "flag": np.array([True, False]),
            "genres": ["x|y", None],
        }
    )

    catalogue = catalogue_from_dataframe(frame, list_columns=["genres"])

    first = catalogue.metadata_of("a")
    assert first == {"n": 1, "x": 0.5, "flag": True, "genres": ["x", "y"]}
    assert [type(first[key]) for key in ("n", "x", "flag")] == [int, float, bool]
    assert catalogue.metadata_of("b") == {"n": 2, "flag": False}


def test_duplicate_catalogue_ids_are_named_with_their_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "items.csv", "item_id,title\na,A\nb,B\na,A again\nc,C\nb,B again\n")

    with pytest.raises(DuplicateIdError) as caught:
        read_catalogue(path)

    message = str(caught.value)
    assert caught.value.duplicates == ["a", "b"]
    assert "items.csv" in message and "'item_id'" in message
    assert "'a' (line 2, line 4)" in message and "'b' (line 3, line 6)" in message


def test_catalogue_refusals_name_file_column_and_place(tmp_path: Path) -> None:
    blank_id = write(tmp_path / "items.csv", "item_id,title\na,A\n  ,B\n")
    with pytest.raises(InvalidIdError, match=r"items\.csv, line 3: column 'item_id' is '  '"):
        read_catalogue(blank_id)

    with pytest.raises(InvalidInputError, match=r"items\.csv has no column 'sku' \(named by item_id_column\)"):
        read_catalogue(blank_id, item_id_column="sku")

    dated = pd.DataFrame({"item_id": ["a", "b"], "released": pd.to_datetime(["2020-01-01", "2021-01-01"])})
    with pytest.raises(InvalidMetadataError, match=r"shop, row 0: column 'released' is .*not Timestamp"):
        catalogue_from_dataframe(dated, source="shop")
    assert catalogue_from_dataframe(dated, metadata_columns=[]).metadata_of("a") == {}

    numbers = pd.DataFrame({"item_id": ["a", "b"], "codes": [["x"], [1, 2]]})
    with pytest.raises(InvalidMetadataError, match=r"row 1: column 'codes' .*this list holds int"):
        catalogue_from_dataframe(numbers)

    with pytest.raises(InvalidInputError, match="not in metadata_columns"):
        catalogue_from_dataframe(numbers, metadata_columns=[], list_columns=["codes"])


def test_readers_say_which_extra_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "events.csv", "user_id,item_id\nu1,i1\n")
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now raises ImportError

    with pytest.raises(MissingDependencyError, match=r"two-stage-rec\[data\]"):
        read_interactions(path)

"""two_stage_rec.datasets and `two-stage-rec data`: parsing, verification, download, the
interaction log and catalogue types, splits, CLI.

Unit tests write a tiny data set in the ml-100k file format into tmp_path and
serve it as a zip from a loopback HTTP server, so the real download path
(pooch + requests + verify + atomic install) runs without internet.
Integration tests read the real files from $TWO_STAGE_REC_DATA.
"""

from __future__ import annotations

import http.server
import io
import threading
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from two_stage_rec.cli import app
from two_stage_rec.datasets import (
    CANONICAL_SPLITS,
    DATA_ENV_VAR,
    GENRES,
    ML_100K_CHECKSUMS,
    SPLIT_KINDS,
    Catalogue,
    Checksums,
    Interactions,
    SplitSpec,
    canonical_split,
    default_cache_dir,
    download_movielens_100k,
    locate_movielens_100k,
    movielens_100k,
    per_user_split,
    random_split,
    split,
    temporal_split,
)
from two_stage_rec.datasets import checksums as checksums_module
from two_stage_rec.datasets.checksums import sha256_file
from two_stage_rec.datasets.download import CACHE_ENV_VAR
from two_stage_rec.errors import (
    ChecksumMismatchError,
    DatasetError,
    DuplicateIdError,
    InvalidIdError,
    InvalidInputError,
    InvalidMetadataError,
    TwoStageRecError,
    UnknownKeyError,
    UnknownUserError,
)
from two_stage_rec.validation import check_metadata

# --------------------------------------------------------------------------- fixture data

FLAGS_NONE = ["0"] * len(GENRES)


def _flags(*genres: str) -> str:
    flags = list(FLAGS_NONE)
    for genre in genres:
        flags[GENRES.index(genre)] = "1"
    return "|".join(flags)


ITEM_LINES = [
    f"1|Misérables, Les (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Mis%E9rables|{_flags('Drama', 'Musical')}",
    f"2|Chasing Amy (1997)|01-Jan-1997||http://us.imdb.com/M/title-exact?Chasing%20Amy|{_flags('Comedy', 'Romance')}",
    f"3|Chasing Amy (1997)|01-Jan-1997||http://us.imdb.com/M/title-exact?Chasing%20Amy%20b|{_flags('Drama')}",
    f"4|unknown||||{_flags('unknown')}",
    f"5|Two Friends (1986) |26-Apr-1986|||{_flags('Drama')}",
    f"6|Contempt (Mépris, Le) (1963)|27-Jun-1997||http://us.imdb.com/M/title-exact?M%E9pris|{_flags('Drama')}",
    f"7|Star Wars (1977)|01-Jan-1977||http://us.imdb.com/M/title-exact?Star%20Wars|"
    f"{_flags('Action', 'Adventure', 'Romance', 'Sci-Fi', 'War')}",
    "8|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Toy%20Story|"
    + _flags("Animation", "Children's", "Comedy"),
]
USER_LINES = [
    "1|24|M|technician|85711",
    "2|53|F|other|94043",
    "3|23|M|writer|32067",
    "4|24|M|technician|43537",
    "5|33|F|other|15213",
    "42|30|M|administrator|17870",
    "74|39|M|scientist|T8H1N",
]


def _rating_rows() -> list[tuple[int, int, int, int]]:
    """A small log with the shapes that matter: a user with one rating, popular items, ties."""
    rows = [(1, 7, 5, 881250949)]  # user 1 rated once
    rng = np.random.default_rng(0)
    for user in (2, 3, 4, 5, 42, 74):
        n_items = {2: 2, 3: 3, 4: 5, 5: 8, 42: 7, 74: 4}[user]
        for item in rng.permutation(np.arange(1, 9))[:n_items]:
            rows.append((user, int(item), int(rng.integers(1, 6)), int(880000000 + rng.integers(0, 10**7))))
    return rows


RATING_ROWS = _rating_rows()


def _lines(rows: list[tuple[int, int, int, int]]) -> str:
    return "".join("\t".join(str(v) for v in row) + "\n" for row in rows)


def write_ml_folder(folder: Path) -> Path:
    """Write a tiny ml-100k-format folder (u.item in latin-1, as GroupLens ships it)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "u.data").write_text(_lines(RATING_ROWS), encoding="ascii")
    (folder / "u.item").write_bytes(("\n".join(ITEM_LINES) + "\n").encode("latin-1"))
    (folder / "u.user").write_text("\n".join(USER_LINES) + "\n", encoding="ascii")
    cut = int(0.8 * len(RATING_ROWS))
    (folder / "u1.base").write_text(_lines(RATING_ROWS[:cut]), encoding="ascii")
    (folder / "u1.test").write_text(_lines(RATING_ROWS[cut:]), encoding="ascii")
    (folder / "README").write_text("tiny fixture in the ml-100k format\n", encoding="ascii")
    return folder


def checksums_of(folder: Path, *, archive: bytes | None = None) -> Checksums:
    import hashlib

    return Checksums(
        members={name: sha256_file(folder / name) for name in ("u.data", "u.item", "u.user")},
        archive=hashlib.sha256(archive).hexdigest() if archive is not None else None,
    )


def zip_folder(
    folder: Path,
    *,
    skip: tuple[str, ...] = (),
    extra: dict[str, bytes] | None = None,
    compression: int = zipfile.ZIP_DEFLATED,
) -> bytes:
    """Zip a folder the way GroupLens does: members under ``ml-100k/``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as bundle:
        bundle.writestr("ml-100k/", b"")
        for path in sorted(folder.iterdir()):
            if path.name not in skip:
                bundle.writestr(f"ml-100k/{path.name}", path.read_bytes())
        for name, payload in (extra or {}).items():
            bundle.writestr(name, payload)
    return buffer.getvalue()


@dataclass
class Fixture:
    folder: Path
    checksums: Checksums
    zip_bytes: bytes


@pytest.fixture
def ml(tmp_path: Path) -> Fixture:
    folder = write_ml_folder(tmp_path / "source" / "ml-100k")
    payload = zip_folder(folder)
    return Fixture(folder=folder, checksums=checksums_of(folder, archive=payload), zip_bytes=payload)


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test may read the developer's data or write the real user cache."""
    monkeypatch.delenv(DATA_ENV_VAR, raising=False)
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path / "default-cache"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


# --------------------------------------------------------------------------- loopback HTTP server


@dataclass
class Server:
    base_url: str
    routes: dict[str, Callable[[http.server.BaseHTTPRequestHandler], None]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)

    def serve(self, path: str, payload: bytes) -> str:
        def send(handler: http.server.BaseHTTPRequestHandler) -> None:
            handler.send_response(200)
            handler.send_header("Content-Type", "application/zip")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)

        self.routes[path] = send
        return self.base_url + path

    def serve_truncated(self, path: str, payload: bytes) -> str:
        """Announce the full length, send half, hang up: a dropped connection."""

        def send(handler: http.server.BaseHTTPRequestHandler) -> None:
            handler.send_response(200)
            handler.send_header("Content-Type", "application/zip")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload[: len(payload) // 2])
            handler.wfile.flush()
            handler.close_connection = True

        self.routes[path] = send
        return self.base_url + path


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server(base_url="")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests.append(self.path)
            route = state.routes.get(self.path)
            if route is None:
                self.send_error(404)
                return
            route(self)

        def log_message(self, format: str, *args: object) -> None:  # keep test output clean
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
    # A short poll interval keeps shutdown() (and so each test's teardown) fast.
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def assert_nothing_cached(cache: Path) -> None:
    leftovers = sorted(p.name for p in cache.iterdir()) if cache.exists() else []
    assert leftovers == [], f"cache should be empty after a failed download, holds {leftovers}"


# --------------------------------------------------------------------------- parsing


def test_loads_every_table_with_documented_dtypes(ml: Fixture) -> None:
    data = movielens_100k(ml.folder, checksums=ml.checksums)
    assert len(data.interactions) == len(RATING_ROWS)
    assert len(data.users) == len(USER_LINES)
    assert len(data.movies) == len(ITEM_LINES)
    assert data.path == ml.folder
    log = data.interactions
    assert log.user_ids.dtype.kind == "U" and log.item_ids.dtype.kind == "U"  # ids are strings: "42"
    assert log.ratings is not None and log.ratings.dtype == np.float32
    assert log.timestamps is not None and log.timestamps.dtype == np.int64
    assert log.weights is None and log.has_ratings
    user, item, rating, timestamp = RATING_ROWS[0]
    assert (log.user_ids[0], log.item_ids[0], log.ratings[0], log.timestamps[0]) == (
        str(user),
        str(item),
        rating,
        timestamp,
    )
    for column in (log.user_ids, log.item_ids, log.ratings, log.timestamps):
        with pytest.raises(ValueError, match="read-only"):
            column[0] = column[1]
    assert repr(log) == f"Interactions(n={len(RATING_ROWS)}, users=7, items={log.n_items}, explicit, timestamps)"


def test_the_catalogue_of_movielens(ml: Fixture) -> None:
    data = movielens_100k(ml.folder, checksums=ml.checksums)
    catalogue = data.catalogue
    assert list(catalogue) == data.movies.ids_str() and len(catalogue) == len(ITEM_LINES)
    assert catalogue.metadata_of("7") == data.movies[7].metadata()
    assert catalogue.label("2") == catalogue.label("3") == "Chasing Amy (1997)"  # titles repeat, ids do not
    assert set(data.interactions.item_ids.tolist()) <= set(catalogue)


def test_titles_are_latin1_and_movies_are_keyed_by_id(ml: Fixture) -> None:
    movies = movielens_100k(ml.folder, checksums=ml.checksums).movies
    assert movies[1].title == "Misérables, Les (1995)"
    assert movies["6"].title == "Contempt (Mépris, Le) (1963)"
    # Two different movies share a title; keyed by id, neither vanishes.
    assert movies[2].title == movies[3].title == "Chasing Amy (1997)"
    assert len(set(movies.titles())) == len(movies) - 1
    assert movies.ids_str() == [str(i) for i in range(1, 9)]
    assert movies.ids.dtype == np.int32
    assert 7 in movies and "7" in movies and 99 not in movies and "x" not in movies
    with pytest.raises(UnknownKeyError, match="99"):
        movies[99]


def test_movie_fields_and_year(ml: Fixture) -> None:
    movies = movielens_100k(ml.folder, checksums=ml.checksums).movies
    star_wars = movies[7]
    assert star_wars.genres == ("Action", "Adventure", "Romance", "Sci-Fi", "War")
    assert star_wars.release_date is not None and star_wars.release_date.isoformat() == "1977-01-01"
    assert star_wars.imdb_url == "http://us.imdb.com/M/title-exact?Star%20Wars"
    assert star_wars.year == 1977
    # The film's year comes from the title, not from a later re-release date.
    assert movies[6].year == 1963
    assert movies[5].title == "Two Friends (1986) " and movies[5].year == 1986  # title kept byte-exact
    unknown = movies[4]
    assert (unknown.title, unknown.release_date, unknown.imdb_url, unknown.year) == ("unknown", None, None, None)
    matrix = movies.genre_matrix()
    assert matrix.shape == (8, 19) and matrix.dtype == np.bool_
    assert [GENRES[c] for c in np.flatnonzero(matrix[6])] == list(star_wars.genres)


def test_metadata_is_pinecone_compatible(ml: Fixture) -> None:
    movies = movielens_100k(ml.folder, checksums=ml.checksums).movies
    metadata = movies.metadata()
    assert metadata[6] == {
        "title": "Star Wars (1977)",
        "genres": ["Action", "Adventure", "Romance", "Sci-Fi", "War"],
        "year": 1977,
    }
    assert metadata[3] == {"title": "unknown", "genres": ["unknown"]}  # no year, and no null
    # The library's own store validation accepts it (no nulls, allowed types only).
    assert check_metadata(movies.ids_str(), metadata) == metadata
    assert movies.metadata_by_id()["7"] == metadata[6]


def test_users(ml: Fixture) -> None:
    users = movielens_100k(ml.folder, checksums=ml.checksums).users
    user = users["42"]
    assert (user.id, user.age, user.gender, user.occupation, user.zip_code) == (42, 30, "M", "administrator", "17870")
    assert users[74].zip_code == "T8H1N"  # Canadian postcodes: zip is a string
    assert users.ids.tolist() == [1, 2, 3, 4, 5, 42, 74]
    assert users.ids_str()[-1] == "74"
    with pytest.raises(UnknownUserError):
        users[999]
    with pytest.raises(KeyError):  # the built-in still catches it
        users["nobody"]


def test_interactions_views(ml: Fixture) -> None:
    log = movielens_100k(ml.folder, checksums=ml.checksums).interactions
    assert log.user_ids[0] == "1" and log.item_ids[0] == "7"
    mine = log.for_user("42")
    assert len(mine) == 7 and set(mine.user_ids.tolist()) == {"42"}
    assert np.array_equal(log.for_user(42).item_ids, mine.item_ids)  # an int id means its decimal string
    assert len(log.for_user(999)) == 0 and len(log.for_user("forty-two")) == 0
    assert log.n_users == 7 and log.n_items <= 8
    both = Interactions.concatenate([log.take(slice(0, 3)), log.take(slice(3, None))])
    assert np.array_equal(both.item_ids, log.item_ids) and both.ratings is not None and log.ratings is not None
    assert np.array_equal(both.ratings, log.ratings) and both.fingerprint() == log.fingerprint()
    users, codes = log.user_codes()
    assert users.tolist() == sorted(set(log.user_ids.tolist())) and np.array_equal(users[codes], log.user_ids)


def test_seen_items_and_popularity() -> None:
    log = Interactions.from_arrays(
        user_ids=[1, 2, 2, 3, 3, 3], item_ids=[10, 10, 20, 10, 20, 30], ratings=[5, 4, 3, 2, 1, 5], timestamps=[0] * 6
    )
    assert log.items_by_user() == {"1": {"10"}, "2": {"10", "20"}, "3": {"10", "20", "30"}}
    assert log.items_by_user(min_rating=4) == {"1": {"10"}, "2": {"10"}, "3": {"30"}}
    assert list(log.item_counts().items()) == [("10", 3), ("20", 2), ("30", 1)]
    tie = Interactions.from_arrays(user_ids=[1, 1, 1], item_ids=["sku-9", "sku-3", "sku-10"])
    assert list(tie.item_counts()) == ["sku-10", "sku-3", "sku-9"]  # ties: smaller id first, as strings
    assert tie.take(np.zeros(3, dtype=bool)).items_by_user() == {}
    with pytest.raises(InvalidInputError, match="min_rating needs ratings"):
        tie.items_by_user(min_rating=4)


def test_string_ids_and_integer_ids() -> None:
    log = Interactions.from_arrays(user_ids=["c-1f9a", "c-1f9a", "007"], item_ids=np.array([42, 7, 42]))
    assert log.user_ids.tolist() == ["c-1f9a", "c-1f9a", "007"]  # strings are kept exactly, leading zeros too
    assert log.item_ids.tolist() == ["42", "7", "42"]  # integers become their decimal string
    assert (log.n_users, log.n_items, len(log)) == (2, 2, 3)
    mixed = Interactions.from_arrays(user_ids=np.array(["u", 5], dtype=object), item_ids=["a", "b"])
    assert mixed.user_ids.tolist() == ["u", "5"]
    empty = Interactions.from_arrays(user_ids=[], item_ids=[], ratings=[], timestamps=[])
    assert len(empty) == 0 and empty.items_by_user() == {} and empty.item_counts() == {}


def test_columns_are_copied_and_frozen() -> None:
    users = np.array(["a", "b"])
    ratings = np.array([1.0, 2.0])
    log = Interactions.from_arrays(user_ids=users, item_ids=["x", "y"], ratings=ratings)
    users[0], ratings[0] = "changed", 9.0
    assert log.user_ids[0] == "a" and log.ratings is not None and log.ratings[0] == 1.0
    with pytest.raises(ValueError, match="read-only"):
        log.item_ids[0] = "z"


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"user_ids": [1.5, 2.0]}, r"user_ids\[0\] is 1\.5; ids must be strings or integers, got float64"),
        ({"item_ids": np.array([3.0, 4.0])}, r"item_ids\[0\] is 3\.0; ids must be strings or integers"),
        ({"user_ids": [True, False]}, r"user_ids\[0\] is True"),
        ({"user_ids": np.array(["a", 2.5], dtype=object)}, r"user_ids\[1\] is 2\.5"),
        ({"item_ids": np.array(["a", None], dtype=object)}, r"item_ids\[1\] is None"),
        ({"item_ids": np.array(["a", np.float32(7.0)], dtype=object)}, r"item_ids\[1\] is (np\.float32\()?7\.0"),
        ({"item_ids": ["sku-1", ""]}, r"item_ids\[1\] is empty"),
        ({"user_ids": ["a", "   "]}, r"user_ids\[1\] is empty"),
        ({"user_ids": [[1], [2]]}, "user_ids must be one-dimensional"),
        ({"ratings": [4.0, float("nan")]}, r"ratings\[1\] is nan; values must be finite"),
        ({"ratings": [float("inf"), 1.0]}, r"ratings\[0\] is inf"),
        ({"ratings": ["four", "five"]}, "ratings cannot be converted to float32"),
        ({"weights": [1.0, 0.0]}, r"weights\[1\] is 0\.0; weights must be positive"),
        ({"weights": [-2.0, 1.0]}, r"weights\[0\] is -2\.0"),
        ({"weights": [1.0, float("nan")]}, r"weights\[1\] is nan"),
        ({"timestamps": [0.0, float("nan")]}, r"timestamps\[1\] is not a finite time"),
        ({"timestamps": np.array(["2024-01-05", "NaT"], dtype="datetime64[s]")}, r"timestamps\[1\] is not a time"),
        ({"user_ids": [1, 2, 3]}, r"columns differ in length: \{'user_ids': 3, 'item_ids': 2"),
        ({"weights": [1.0]}, r"differ in length: .*'weights': 1"),
    ],
)
def test_interactions_reject_bad_columns(columns: dict[str, object], message: str) -> None:
    base: dict[str, object] = {"user_ids": ["c-1", "c-2"], "item_ids": ["sku-1", "sku-2"]}
    with pytest.raises(InvalidInputError, match=message):
        Interactions.from_arrays(**{**base, **columns})  # type: ignore[arg-type]


def test_timestamps_may_be_datetimes() -> None:
    when = np.array(["1970-01-01T00:01:40", "2024-01-05T10:00:00"], dtype="datetime64[s]")
    log = Interactions.from_arrays(user_ids=["a", "b"], item_ids=["x", "y"], timestamps=when)
    assert log.timestamps is not None and log.timestamps.tolist() == [100, 1704448800]


def test_implicit_feedback() -> None:
    log = Interactions.from_arrays(
        user_ids=["c-1", "c-1", "c-2"], item_ids=["sku-1", "sku-2", "sku-1"], weights=[1.0, 5.0, 1.0]
    )
    assert log.ratings is None and not log.has_ratings and log.timestamps is None
    assert repr(log) == "Interactions(n=3, users=2, items=2, implicit, weights)"
    assert log.items_by_user() == {"c-1": {"sku-1", "sku-2"}, "c-2": {"sku-1"}}
    assert log.item_counts() == {"sku-1": 2, "sku-2": 1}  # events, not weights
    taken = log.take(np.array([2, 0]))
    assert taken.ratings is None and taken.weights is not None and taken.weights.tolist() == [1.0, 1.0]


def test_without_ratings_keeps_everything_else() -> None:
    log = Interactions.from_arrays(
        user_ids=["a", "b"], item_ids=["x", "y"], ratings=[4, 2], timestamps=[10, 20], weights=[1, 2]
    )
    implicit = log.without_ratings()
    assert implicit.ratings is None and log.ratings is not None  # the original keeps its ratings
    for name in ("user_ids", "item_ids", "timestamps", "weights"):
        assert np.array_equal(getattr(implicit, name), getattr(log, name))
    assert implicit.fingerprint() == log.fingerprint()


def test_concatenate() -> None:
    explicit = Interactions.from_arrays(user_ids=["a"], item_ids=["x"], ratings=[5], timestamps=[1])
    longer_ids = Interactions.from_arrays(user_ids=["user-b"], item_ids=["item-y"], ratings=[3], timestamps=[2])
    both = Interactions.concatenate([explicit, longer_ids])
    assert both.user_ids.tolist() == ["a", "user-b"] and both.item_ids.tolist() == ["x", "item-y"]
    assert both.weights is None and both.ratings is not None and both.ratings.tolist() == [5.0, 3.0]
    with pytest.raises(InvalidInputError, match="only some have ratings"):
        Interactions.concatenate([explicit, explicit.without_ratings()])
    with pytest.raises(InvalidInputError, match="only some have timestamps"):
        Interactions.concatenate([Interactions.from_arrays(user_ids=["a"], item_ids=["x"], ratings=[1]), explicit])
    with pytest.raises(InvalidInputError, match="at least one"):
        Interactions.concatenate([])


def test_restrict_items_drops_or_raises() -> None:
    log = Interactions.from_arrays(
        user_ids=["a", "a", "b", "b", "c"], item_ids=["x", "gone-1", "y", "gone-2", "gone-1"], ratings=[1, 2, 3, 4, 5]
    )
    kept, dropped = log.restrict_items({"x", "y", "z"}, unknown="drop")
    assert dropped == 3 and kept.item_ids.tolist() == ["x", "y"] and kept.ratings is not None
    assert kept.ratings.tolist() == [1.0, 3.0]
    with pytest.raises(
        InvalidInputError,
        match=r"events\.csv: 3 interaction\(?s\)? name 2 item\(?s\)? that are not in the catalogue "
        r"\(e\.g\. 'gone-1', 'gone-2', first at row 1\)",
    ):
        log.restrict_items({"x", "y"}, source="events.csv")
    same, none_dropped = log.restrict_items(["x", "y", "gone-1", "gone-2"])
    assert same is log and none_dropped == 0
    with pytest.raises(InvalidInputError, match="'drop' or 'raise'"):
        log.restrict_items({"x"}, unknown="ignore")  # type: ignore[arg-type]


def test_fingerprint_is_stable_and_sensitive() -> None:
    def log(**changes: object) -> Interactions:
        columns: dict[str, object] = {
            "user_ids": ["c-1", "c-2", "c-1"],
            "item_ids": ["sku-1", "sku-1", "sku-2"],
            "ratings": [5, 4, 3],
            "timestamps": [10, 20, 30],
        }
        return Interactions.from_arrays(**{**columns, **changes})  # type: ignore[arg-type]

    reference = log().fingerprint()
    # Pinned: bundles record it and evaluation compares it in another process, maybe another version.
    assert reference == "5cfdb718602deab085de625ac0614a5ea4e9f7801173696bb3518e3ea391f907"
    assert log(ratings=[1, 1, 1]).fingerprint() == reference  # ratings are not part of it
    assert log(ratings=None).fingerprint() == reference
    changed = [
        log(user_ids=["c-1", "c-2", "c-3"]),
        log(item_ids=["sku-1", "sku-2", "sku-1"]),
        log(timestamps=[10, 20, 31]),
        log(timestamps=None),
        log().take(np.array([1, 0, 2])),  # order matters: a split must reproduce the same log
        log().take(slice(0, 2)),
    ]
    assert len({reference, *(other.fingerprint() for other in changed)}) == len(changed) + 1


# --------------------------------------------------------------------------- the catalogue


def test_catalogue_from_records() -> None:
    catalogue = Catalogue.from_records(
        ["sku-1", 2, "c-1f9a"],
        [{"title": "Lamp", "price": 9.5, "tags": ["home"]}, {"name": "Two", "in_stock": True}, {}],
    )
    assert catalogue.item_ids == ("sku-1", "2", "c-1f9a") and len(catalogue) == 3
    assert list(catalogue) == ["sku-1", "2", "c-1f9a"]
    assert "2" in catalogue and 2 not in catalogue and "sku-9" not in catalogue
    assert catalogue.metadata_of("sku-1") == {"title": "Lamp", "price": 9.5, "tags": ["home"]}
    copy = catalogue.metadata_of("2")
    copy["name"] = "changed"
    assert catalogue.metadata_of("2")["name"] == "Two"
    assert catalogue.metadata_by_id()["c-1f9a"] == {}
    assert repr(catalogue) == "Catalogue(items=3, metadata=['in_stock', 'name', 'price', 'tags', 'title'])"
    with pytest.raises(InvalidInputError, match="'sku-9' is not in the catalogue"):
        catalogue.metadata_of("sku-9")
    bare = Catalogue.from_records(np.array([3, 1, 2]))
    assert bare.item_ids == ("3", "1", "2") and bare.metadata == ({}, {}, {})


def test_catalogue_names_every_duplicate() -> None:
    with pytest.raises(DuplicateIdError) as caught:
        Catalogue.from_records(["a", "b", "a", 7, "7", "c"])
    assert caught.value.duplicates == ["7", "a"]


@pytest.mark.parametrize(
    ("item_ids", "message"), [(["a", ""], "empty"), (["a", " "], "empty"), ([1.5], "1.5"), ([True], "True")]
)
def test_catalogue_refuses_bad_ids(item_ids: list[object], message: str) -> None:
    with pytest.raises(InvalidIdError, match=message):
        Catalogue.from_records(item_ids)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"year": None}, "year"),
        ({"price": float("nan")}, "price"),
        ({"tags": ["a", 1]}, "tags"),
        ({"nested": {"a": 1}}, "nested"),
        ({"": "empty key"}, "key"),
    ],
)
def test_catalogue_metadata_types(entry: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidMetadataError, match=message):
        Catalogue.from_records(["a"], [entry])  # type: ignore[list-item]


def test_catalogue_metadata_must_match_the_ids() -> None:
    with pytest.raises(InvalidMetadataError, match="2 metadata entries for 1 ids"):
        Catalogue.from_records(["a"], [{}, {}])


def test_catalogue_save_and_load(tmp_path: Path) -> None:
    catalogue = Catalogue.from_records(
        ["sku-1", "é-2", "3"],
        [
            {"title": "Misérables, Les", "year": 1995, "price": 9.99, "adult": False, "genres": ["Drama", "Musical"]},
            {"title": "Ünïcode"},
            {},
        ],
    )
    path = catalogue.save(tmp_path / "catalogue.jsonl")
    loaded = Catalogue.load(path)
    assert loaded.item_ids == catalogue.item_ids and loaded.metadata == catalogue.metadata
    year = loaded.metadata_of("sku-1")["year"]
    assert type(year) is int and type(loaded.metadata_of("sku-1")["price"]) is float
    assert path.read_text(encoding="utf-8").splitlines()[0] == '{"format": "two_stage_rec.catalogue", "version": 1}'


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "not a two_stage_rec catalogue file"),
        ("{not json\n", r"catalogue\.jsonl:1 is not JSON"),
        ('{"format": "other"}\n', "not a two_stage_rec catalogue file"),
        ('{"format": "two_stage_rec.catalogue", "version": 7}\n', "version 7"),
        ('{"format": "two_stage_rec.catalogue", "version": 1}\n{"metadata": {}}\n', r"catalogue\.jsonl:2 is not"),
        ('{"format": "two_stage_rec.catalogue", "version": 1}\n{"id": "a"}\n{"id": "a"}\n', "duplicate"),
    ],
)
def test_catalogue_load_names_the_problem(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "catalogue.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DatasetError, match=message):
        Catalogue.load(path)
    with pytest.raises(DatasetError, match="cannot read"):
        Catalogue.load(tmp_path / "missing.jsonl")


def test_catalogue_label_and_subset() -> None:
    catalogue = Catalogue.from_records(
        ["a", "b", "c", "d"], [{"title": "Alpha"}, {"name": "Bravo"}, {"title": ""}, {"title": 4}]
    )
    assert [catalogue.label(item) for item in catalogue] == ["Alpha", "Bravo", "c", "d"]
    assert catalogue.label("unknown") == "unknown"
    part = catalogue.subset(["c", "a"])
    assert part.item_ids == ("c", "a") and part.metadata == ({"title": ""}, {"title": "Alpha"})
    with pytest.raises(InvalidInputError, match=r"2 ids are not in the catalogue, e\.g\. \['x', 'y'\]"):
        catalogue.subset(["a", "x", "y"])
    with pytest.raises(DuplicateIdError):
        catalogue.subset(["a", "a"])


@pytest.mark.parametrize(
    ("file", "content", "message"),
    [
        ("u.data", b"1\t2\t3\n", r"columns|cannot parse"),
        ("u.data", b"1\t2\tthree\t4\n", "cannot parse"),
        ("u.data", b"", "empty"),
        ("u.data", b"\n\n", "no ratings"),
        ("u.item", b"1|Only three|fields\n", r"u\.item, line 1: cannot parse movie"),
        ("u.item", b"1|A (1990)|32-Foo-1990|||" + b"|".join([b"0"] * 19) + b"\n", "line 1"),
        ("u.user", b"1|24|M|technician|85711\n2|old|F|other|94043\n", r"u\.user, line 2"),
        ("u.user", b"1|24|M|technician|85711\n1|25|F|other|94043\n", "unique"),
    ],
)
def test_malformed_files_name_the_file_and_line(ml: Fixture, file: str, content: bytes, message: str) -> None:
    (ml.folder / file).write_bytes(content)
    with pytest.raises(DatasetError, match=message):
        movielens_100k(ml.folder, checksums=checksums_of(ml.folder))


# --------------------------------------------------------------------------- local folders: verified


def test_local_folder_must_match_the_published_checksums(ml: Fixture) -> None:
    # The fixture is not MovieLens-100K, so the default (official) checksums reject it.
    with pytest.raises(ChecksumMismatchError, match=r"u\.data is corrupt, partial or not the published file"):
        movielens_100k(ml.folder)


def test_local_folder_with_a_changed_file_is_rejected(ml: Fixture) -> None:
    with (ml.folder / "u.data").open("a") as handle:
        handle.write("1\t8\t5\t881250950\n")
    with pytest.raises(ChecksumMismatchError) as caught:
        movielens_100k(ml.folder, checksums=ml.checksums)
    assert isinstance(caught.value, ValueError)  # also the built-in


def test_incomplete_local_folder_names_the_missing_files(ml: Fixture) -> None:
    (ml.folder / "u.item").unlink()
    (ml.folder / "u.user").unlink()
    with pytest.raises(DatasetError, match=r"missing u\.item, u\.user"):
        movielens_100k(ml.folder, checksums=ml.checksums)


def test_missing_local_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        movielens_100k(tmp_path / "nowhere")


def test_parent_of_the_ml_100k_folder_is_accepted(ml: Fixture) -> None:
    assert locate_movielens_100k(ml.folder.parent, checksums=ml.checksums) == ml.folder


def test_environment_variable_is_used_when_no_data_dir(ml: Fixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATA_ENV_VAR, str(ml.folder))
    assert locate_movielens_100k(checksums=ml.checksums) == ml.folder
    monkeypatch.setenv(DATA_ENV_VAR, str(ml.folder.parent / "missing"))
    with pytest.raises(DatasetError, match=r"\$TWO_STAGE_REC_DATA"):
        locate_movielens_100k(checksums=ml.checksums)
    # An explicit data_dir wins over the environment.
    assert locate_movielens_100k(ml.folder, checksums=ml.checksums) == ml.folder


# --------------------------------------------------------------------------- download and cache


def test_download_verifies_and_caches(ml: Fixture, server: Server, tmp_path: Path) -> None:
    url = server.serve("/ml-100k.zip", ml.zip_bytes)
    cache = tmp_path / "cache"
    data = movielens_100k(cache_dir=cache, url=url, checksums=ml.checksums, progress=False)
    assert data.path == cache / "ml-100k"
    assert len(data.interactions) == len(RATING_ROWS)
    assert data.movies[1].title == "Misérables, Les (1995)"
    assert sorted(p.name for p in cache.iterdir()) == ["ml-100k"]  # no scratch left behind
    assert (data.path / "u1.base").is_file() and (data.path / "README").is_file()
    # The second load comes from the cache: no new request.
    again = movielens_100k(cache_dir=cache, url=url, checksums=ml.checksums, progress=False)
    assert again.path == data.path
    assert server.requests == ["/ml-100k.zip"]


def test_download_shows_a_progress_bar(ml: Fixture, server: Server, tmp_path: Path, capsys) -> None:
    url = server.serve("/ml-100k.zip", ml.zip_bytes)
    download_movielens_100k(tmp_path / "cache", url=url, checksums=ml.checksums, progress=True)
    assert "100%" in capsys.readouterr().err


def test_download_goes_to_the_default_cache(ml: Fixture, server: Server, tmp_path: Path) -> None:
    url = server.serve("/ml-100k.zip", ml.zip_bytes)
    folder = locate_movielens_100k(url=url, checksums=ml.checksums, progress=False)
    assert folder == tmp_path / "default-cache" / "ml-100k" == default_cache_dir() / "ml-100k"


def test_default_cache_dir_is_the_platform_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    import pooch

    monkeypatch.delenv(CACHE_ENV_VAR)
    assert default_cache_dir() == Path(pooch.os_cache("two_stage_rec"))


def test_corrupt_download_is_not_cached(ml: Fixture, server: Server, tmp_path: Path) -> None:
    corrupt = bytearray(ml.zip_bytes)
    corrupt[len(corrupt) // 2] ^= 0xFF
    url = server.serve("/ml-100k.zip", bytes(corrupt))
    cache = tmp_path / "cache"
    with pytest.raises(ChecksumMismatchError, match=r"corrupt or partial.*nothing was cached"):
        movielens_100k(cache_dir=cache, url=url, checksums=ml.checksums, progress=False)
    assert_nothing_cached(cache)


def test_unreadable_zip_is_not_cached_even_without_an_archive_checksum(
    ml: Fixture, server: Server, tmp_path: Path
) -> None:
    url = server.serve("/ml-100k.zip", b"PK\x03\x04 this is not a zip file" * 100)
    members_only = Checksums(members=ml.checksums.members)
    cache = tmp_path / "cache"
    with pytest.raises(ChecksumMismatchError, match="not a readable zip"):
        download_movielens_100k(cache, url=url, checksums=members_only, progress=False)
    assert_nothing_cached(cache)


def test_zip_with_a_changed_member_is_not_cached(ml: Fixture, server: Server, tmp_path: Path) -> None:
    (ml.folder / "u.user").write_text("\n".join(USER_LINES[:-1]) + "\n", encoding="ascii")
    url = server.serve("/ml-100k.zip", zip_folder(ml.folder))
    members_only = Checksums(members=ml.checksums.members)
    cache = tmp_path / "cache"
    with pytest.raises(ChecksumMismatchError, match=r"u\.user is corrupt.*"):
        download_movielens_100k(cache, url=url, checksums=members_only, progress=False)
    assert_nothing_cached(cache)


def test_zip_missing_a_member_is_not_cached(ml: Fixture, server: Server, tmp_path: Path) -> None:
    url = server.serve("/ml-100k.zip", zip_folder(ml.folder, skip=("u.item",)))
    cache = tmp_path / "cache"
    with pytest.raises(DatasetError, match=r"missing u\.item"):
        download_movielens_100k(cache, url=url, checksums=Checksums(members=ml.checksums.members), progress=False)
    assert_nothing_cached(cache)


def test_truncated_download_is_not_cached(ml: Fixture, server: Server, tmp_path: Path) -> None:
    url = server.serve_truncated("/ml-100k.zip", ml.zip_bytes)
    cache = tmp_path / "cache"
    with pytest.raises(DatasetError, match="could not download") as caught:
        movielens_100k(cache_dir=cache, url=url, checksums=ml.checksums, progress=False)
    assert not isinstance(caught.value, ChecksumMismatchError)
    assert_nothing_cached(cache)


def test_http_error_is_a_dataset_error(ml: Fixture, server: Server, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="404"):
        movielens_100k(cache_dir=tmp_path / "cache", url=server.base_url + "/gone.zip", checksums=ml.checksums)
    assert_nothing_cached(tmp_path / "cache")


def test_hostile_member_paths_stay_inside(ml: Fixture, server: Server, tmp_path: Path) -> None:
    payload = zip_folder(ml.folder, extra={"../../escaped.txt": b"x", "ml-100k/deep/nested.txt": b"y"})
    url = server.serve("/ml-100k.zip", payload)
    cache = tmp_path / "deep" / "er" / "cache"
    folder = download_movielens_100k(cache, url=url, checksums=Checksums(members=ml.checksums.members))
    assert not list(tmp_path.rglob("escaped.txt"))
    assert not (folder / "nested.txt").exists()


def test_corrupt_cache_is_reported_and_force_repairs_it(ml: Fixture, server: Server, tmp_path: Path) -> None:
    url = server.serve("/ml-100k.zip", ml.zip_bytes)
    cache = tmp_path / "cache"
    folder = download_movielens_100k(cache, url=url, checksums=ml.checksums, progress=False)
    (folder / "u.data").write_text("1\t1\t1\t1\n", encoding="ascii")
    with pytest.raises(ChecksumMismatchError, match="force"):
        movielens_100k(cache_dir=cache, url=url, checksums=ml.checksums)
    repaired = download_movielens_100k(cache, url=url, checksums=ml.checksums, progress=False, force=True)
    assert repaired == folder
    assert len(movielens_100k(cache_dir=cache, url=url, checksums=ml.checksums).interactions) == len(RATING_ROWS)
    assert sorted(p.name for p in cache.iterdir()) == ["ml-100k"]


def test_failed_forced_download_keeps_the_good_cache(ml: Fixture, server: Server, tmp_path: Path) -> None:
    url = server.serve("/ml-100k.zip", ml.zip_bytes)
    cache = tmp_path / "cache"
    download_movielens_100k(cache, url=url, checksums=ml.checksums, progress=False)
    bad_url = server.serve_truncated("/bad.zip", ml.zip_bytes)
    with pytest.raises(DatasetError):
        download_movielens_100k(cache, url=bad_url, checksums=ml.checksums, progress=False, force=True)
    assert len(movielens_100k(cache_dir=cache, url=url, checksums=ml.checksums).interactions) == len(RATING_ROWS)


def test_checksums_reject_non_digests() -> None:
    with pytest.raises(InvalidInputError):
        Checksums(members={"u.data": "abc"})
    with pytest.raises(InvalidInputError):
        Checksums(members={})
    upper = Checksums(members={"u.data": "A" * 64}, archive="B" * 64)
    assert upper.members["u.data"] == "a" * 64 and upper.archive == "b" * 64
    assert set(ML_100K_CHECKSUMS.members) == {"u.data", "u.item", "u.user"}
    with pytest.raises(TypeError):
        ML_100K_CHECKSUMS.members["u.data"] = "0" * 64  # type: ignore[index]


# --------------------------------------------------------------------------- splits


def _pairs(log: Interactions) -> list[tuple[str, str]]:
    return list(zip(log.user_ids.tolist(), log.item_ids.tolist(), strict=True))


def _assert_partition(log: Interactions, train: Interactions, test: Interactions) -> None:
    assert len(train) + len(test) == len(log)
    assert not set(_pairs(train)) & set(_pairs(test))
    assert sorted(_pairs(train) + _pairs(test)) == sorted(_pairs(log))
    # Each side keeps the input's order.
    position = {pair: i for i, pair in enumerate(_pairs(log))}
    for side in (train, test):
        indices = [position[pair] for pair in _pairs(side)]
        assert indices == sorted(indices)


def _reference_per_user_split(log: Interactions, test_fraction: float, seed: int) -> npt.NDArray[np.bool_]:
    """The test mask of per_user_split as the int-id Ratings version computed it (before string ids).

    Kept verbatim so that a split by seed stays the split published results and
    trained bundles were made with.
    """
    user_ids = log.user_ids.astype(np.int64)  # MovieLens ids: the old version sorted users as integers
    n = len(user_ids)
    keys = np.random.default_rng(seed).random(n)
    order = np.lexsort((keys, user_ids))
    users_sorted = user_ids[order]
    block_starts = np.flatnonzero(np.r_[True, users_sorted[1:] != users_sorted[:-1]])
    block_sizes = np.diff(np.r_[block_starts, n])
    rank_in_block = np.arange(n) - np.repeat(block_starts, block_sizes)
    n_train = np.maximum(np.round((1.0 - test_fraction) * block_sizes), 1).astype(np.int64)
    is_test = np.empty(n, dtype=np.bool_)
    is_test[order] = rank_in_block >= np.repeat(n_train, block_sizes)
    return is_test


def _test_mask(log: Interactions, test: Interactions) -> npt.NDArray[np.bool_]:
    held_out = set(_pairs(test))
    return np.array([pair in held_out for pair in _pairs(log)], dtype=np.bool_)


def test_random_split(ml: Fixture) -> None:
    log = movielens_100k(ml.folder, checksums=ml.checksums).interactions
    train, test = random_split(log, test_fraction=0.2, seed=7)
    assert len(test) == round(0.2 * len(log))
    _assert_partition(log, train, test)
    again_train, again_test = random_split(log, test_fraction=0.2, seed=7)
    assert _pairs(again_test) == _pairs(test) and _pairs(again_train) == _pairs(train)
    other = {tuple(_pairs(random_split(log, seed=s)[1])) for s in range(5)}
    assert len(other) > 1  # the seed matters
    assert train.ratings is not None and train.timestamps is not None  # every column is carried along


def test_per_user_split_keeps_every_user_in_train(ml: Fixture) -> None:
    log = movielens_100k(ml.folder, checksums=ml.checksums).interactions
    train, test = per_user_split(log, test_fraction=0.25, seed=3)
    _assert_partition(log, train, test)
    for user in np.unique(log.user_ids):
        n_user = int((log.user_ids == user).sum())
        expected_train = max(1, round(0.75 * n_user))
        assert int((train.user_ids == user).sum()) == expected_train, user
    assert len(test.for_user(1)) == 0  # the one-rating user keeps it for training
    again = per_user_split(log, test_fraction=0.25, seed=3)
    assert _pairs(again[1]) == _pairs(test)


@pytest.mark.parametrize(("fraction", "seed"), [(0.25, 42), (0.25, 3), (0.2, 0), (0.5, 123)])
def test_per_user_split_is_the_split_it_always_was(ml: Fixture, fraction: float, seed: int) -> None:
    log = movielens_100k(ml.folder, checksums=ml.checksums).interactions
    _, test = per_user_split(log, test_fraction=fraction, seed=seed)
    assert np.array_equal(_test_mask(log, test), _reference_per_user_split(log, fraction, seed))


def test_per_user_split_does_not_depend_on_how_users_sort() -> None:
    """Users "10" and "9" sort differently as strings and as integers; each user's draw must not change."""
    users = np.repeat([9, 10, 100, 2], 6)
    log = Interactions.from_arrays(user_ids=users, item_ids=np.arange(len(users)))
    for seed in range(5):
        _, test = per_user_split(log, test_fraction=0.5, seed=seed)
        assert np.array_equal(_test_mask(log, test), _reference_per_user_split(log, 0.5, seed))


def _log_from(users: list[int], times: list[int] | None = None) -> Interactions:
    """One event per row with item "i<row>" (so every row is a distinct pair)."""
    return Interactions.from_arrays(
        user_ids=[f"u{user}" for user in users],
        item_ids=[f"i{row}" for row in range(len(users))],
        timestamps=times if times is not None else list(range(len(users))),
    )


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    st.lists(st.tuples(st.integers(min_value=1, max_value=6), st.integers(0, 5)), min_size=0, max_size=60),
    st.floats(min_value=0.05, max_value=0.95),
    st.integers(min_value=0, max_value=2**31),
    st.sampled_from(SPLIT_KINDS),
)
def test_every_split_partitions_the_log(rows: list[tuple[int, int]], fraction: float, seed: int, kind: str) -> None:
    log = _log_from([user for user, _ in rows], [time for _, time in rows])
    train, test = split(log, SplitSpec(kind, fraction, seed))  # type: ignore[arg-type]
    _assert_partition(log, train, test)
    if kind != "random":
        assert set(train.user_ids.tolist()) == set(log.user_ids.tolist())  # every user keeps >= 1 event
    else:
        assert len(test) == round(fraction * len(log))
    if kind == "temporal":
        assert train.timestamps is not None and test.timestamps is not None
        for user in set(test.user_ids.tolist()):
            assert train.for_user(user).timestamps.max() <= test.for_user(user).timestamps.min()  # type: ignore[union-attr]


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    st.lists(st.integers(min_value=1, max_value=6), min_size=0, max_size=60),
    st.floats(min_value=0.05, max_value=0.95),
    st.integers(min_value=0, max_value=2**31),
)
def test_per_user_split_properties(users: list[int], fraction: float, seed: int) -> None:
    log = Interactions.from_arrays(
        user_ids=users, item_ids=np.arange(len(users)), ratings=np.ones(len(users)), timestamps=np.zeros(len(users))
    )
    train, test = per_user_split(log, test_fraction=fraction, seed=seed)
    assert len(train) + len(test) == len(log)
    assert set(train.item_ids.tolist()).isdisjoint(test.item_ids.tolist())
    assert set(train.user_ids.tolist()) == {str(user) for user in users}  # every user keeps >= 1 training rating
    assert np.array_equal(_test_mask(log, test), _reference_per_user_split(log, fraction, seed))
    r_train, r_test = random_split(log, test_fraction=fraction, seed=seed)
    assert len(r_test) == round(fraction * len(users))
    assert sorted(int(i) for i in r_train.item_ids.tolist() + r_test.item_ids.tolist()) == list(range(len(users)))


def test_temporal_split_holds_out_each_users_latest_events() -> None:
    # u1: 5 events, out of order in the log; u2: 2 events; u3: 1 event.
    log = _log_from([1, 2, 1, 1, 3, 2, 1, 1], [50, 7, 10, 40, 1, 8, 20, 30])
    train, test = temporal_split(log, 0.4)
    _assert_partition(log, train, test)
    assert test.for_user("u1").timestamps.tolist() == [50, 40]  # type: ignore[union-attr]  # round(0.4 * 5) = 2
    assert test.for_user("u2").timestamps.tolist() == [8]  # type: ignore[union-attr]  # at least one
    assert len(test.for_user("u3")) == 0 and len(train.for_user("u3")) == 1  # one event stays for training
    assert sorted(train.for_user("u1").timestamps.tolist()) == [10, 20, 30]  # type: ignore[union-attr]


def test_temporal_split_last_n() -> None:
    log = _log_from([1, 1, 1, 1, 2, 2, 3], [1, 2, 3, 4, 1, 2, 1])
    train, test = temporal_split(log, last_n=2)
    assert test.for_user("u1").timestamps.tolist() == [3, 4]  # type: ignore[union-attr]
    assert test.for_user("u2").timestamps.tolist() == [2]  # type: ignore[union-attr]  # one is kept for training
    assert len(test.for_user("u3")) == 0
    _assert_partition(log, train, test)
    assert _pairs(temporal_split(log, None, last_n=2)[1]) == _pairs(test)  # test_fraction is ignored


def test_temporal_split_ties_keep_log_order() -> None:
    log = _log_from([1, 1, 1, 1], [5, 5, 5, 5])
    _, test = temporal_split(log, last_n=2)
    assert test.item_ids.tolist() == ["i2", "i3"]  # later rows count as later
    same_time_first = _log_from([1, 1, 1], [9, 5, 5])
    _, test = temporal_split(same_time_first, last_n=1)
    assert test.item_ids.tolist() == ["i0"]


def test_temporal_split_refusals() -> None:
    no_times = Interactions.from_arrays(user_ids=["a", "a"], item_ids=["x", "y"])
    with pytest.raises(InvalidInputError, match="needs timestamps"):
        temporal_split(no_times)
    log = _log_from([1, 1, 2])
    for last_n in (0, -1, True, 1.5):
        with pytest.raises(InvalidInputError, match="last_n must be a positive integer"):
            temporal_split(log, last_n=last_n)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="pass test_fraction or last_n"):
        temporal_split(log, None)
    with pytest.raises(InvalidInputError, match="test_fraction"):
        temporal_split(log, 1.0)
    empty_train, empty_test = temporal_split(_log_from([]))
    assert len(empty_train) == len(empty_test) == 0


def test_split_spec() -> None:
    log = _log_from([1, 1, 1, 1, 2, 2, 2, 2], [4, 3, 2, 1, 1, 2, 3, 4])
    assert SPLIT_KINDS == ("random", "stratified", "temporal")
    spec = SplitSpec("stratified", 0.25, seed=3)
    assert spec.to_dict() == {"kind": "stratified", "test_fraction": 0.25, "seed": 3}
    assert SplitSpec(**spec.to_dict()) == spec  # type: ignore[arg-type]  # what a bundle manifest records
    assert _pairs(split(log, spec)[1]) == _pairs(per_user_split(log, 0.25, seed=3)[1])
    assert _pairs(split(log, SplitSpec("random", 0.25, seed=3))[1]) == _pairs(random_split(log, 0.25, seed=3)[1])
    assert _pairs(split(log, SplitSpec("temporal", 0.25))[1]) == _pairs(temporal_split(log, 0.25)[1])
    with pytest.raises(InvalidInputError, match="split must be one of random, stratified, temporal"):
        SplitSpec("leave-one-out", 0.2)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="test_fraction"):
        SplitSpec("random", 0.0)


@pytest.mark.parametrize("fraction", [0.0, 1.0, 1.5, -0.1, True])
def test_splits_reject_bad_fractions(ml: Fixture, fraction: float) -> None:
    log = movielens_100k(ml.folder, checksums=ml.checksums).interactions
    with pytest.raises(InvalidInputError, match="test_fraction"):
        random_split(log, test_fraction=fraction)
    with pytest.raises(InvalidInputError, match="test_fraction"):
        per_user_split(log, test_fraction=fraction)
    with pytest.raises(InvalidInputError, match="test_fraction"):
        temporal_split(log, test_fraction=fraction)


def test_canonical_split_reads_the_files(ml: Fixture) -> None:
    train, test = canonical_split("u1", ml.folder, checksums=ml.checksums)
    cut = int(0.8 * len(RATING_ROWS))
    assert _pairs(train) == [(str(u), str(i)) for u, i, _, _ in RATING_ROWS[:cut]]
    assert _pairs(test) == [(str(u), str(i)) for u, i, _, _ in RATING_ROWS[cut:]]
    assert CANONICAL_SPLITS == ("u1", "u2", "u3", "u4", "u5", "ua", "ub")
    with pytest.raises(DatasetError, match=r"ub\.base"):
        canonical_split("ub", ml.folder, checksums=ml.checksums)
    with pytest.raises(InvalidInputError, match="unknown split"):
        canonical_split("u9", ml.folder, checksums=ml.checksums)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- command line

runner = CliRunner()


@pytest.fixture
def fixture_is_the_default(ml: Fixture, server: Server, monkeypatch: pytest.MonkeyPatch) -> Fixture:
    """Make the fixture the data set the CLI knows by default (URL and checksums)."""
    monkeypatch.setattr(checksums_module, "ML_100K_CHECKSUMS", ml.checksums)
    monkeypatch.setattr(checksums_module, "ML_100K_URL", server.serve("/ml-100k.zip", ml.zip_bytes))
    return ml


def test_cli_info_prints_the_counts(fixture_is_the_default: Fixture) -> None:
    result = runner.invoke(app, ["data", "info", "--data-dir", str(fixture_is_the_default.folder)])
    assert result.exit_code == 0, result.output
    out = result.output
    for label, value in [("ratings", len(RATING_ROWS)), ("users", 7), ("movies", 8), ("distinct titles", 7)]:
        assert label in out and str(value) in out
    assert "sparsity" in out and "Ratings by stars" in out
    assert f"checksums: {', '.join(sorted(fixture_is_the_default.checksums.members))} match" in out


def test_cli_download_then_info_from_the_cache(fixture_is_the_default: Fixture, tmp_path: Path) -> None:
    cache = tmp_path / "cli-cache"
    result = runner.invoke(app, ["data", "download", "--cache-dir", str(cache)])
    assert result.exit_code == 0, result.output
    assert "verified" in result.output and (cache / "ml-100k" / "u.data").is_file()
    result = runner.invoke(app, ["data", "info", "--cache-dir", str(cache)])
    assert result.exit_code == 0, result.output
    assert str(cache / "ml-100k") in result.output.replace("\n", "")


def test_cli_errors_are_one_clean_line(ml: Fixture, server: Server, monkeypatch, tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "info", "--data-dir", str(tmp_path / "nowhere")])
    assert result.exit_code == 1
    assert "error:" in result.output and "does not exist" in result.output
    assert "Traceback" not in result.output
    corrupt = bytearray(ml.zip_bytes)
    corrupt[100] ^= 0xFF
    monkeypatch.setattr(checksums_module, "ML_100K_CHECKSUMS", ml.checksums)
    monkeypatch.setattr(checksums_module, "ML_100K_URL", server.serve("/ml-100k.zip", bytes(corrupt)))
    result = runner.invoke(app, ["data", "download", "--cache-dir", str(tmp_path / "c")])
    assert result.exit_code == 1
    assert "corrupt or partial" in result.output and "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)


def test_cli_help_lists_the_data_commands() -> None:
    result = runner.invoke(app, ["data", "--help"])
    assert result.exit_code == 0
    assert "info" in result.output and "download" in result.output


# --------------------------------------------------------------------------- the real MovieLens-100K


@pytest.mark.integration
def test_real_counts(movielens_dir: Path) -> None:
    data = movielens_100k(movielens_dir)  # verified against the published checksums
    assert (len(data.interactions), len(data.users), len(data.movies)) == (100_000, 943, 1_682)
    assert data.interactions.n_users == 943 and data.interactions.n_items == 1_682
    assert len(set(data.movies.titles())) == 1_664
    assert len(data.interactions.for_user(42)) == 183 == len(data.interactions.for_user("42"))
    assert len(data.catalogue) == 1_682 and data.catalogue.label("50") == "Star Wars (1977)"
    summary = data.summary()
    assert summary.rating_counts == {1.0: 6_110, 2.0: 11_370, 3.0: 27_145, 4.0: 34_174, 5.0: 21_201}
    assert round(summary.sparsity, 4) == 0.937


@pytest.mark.integration
def test_real_users_and_movies(movielens_dir: Path) -> None:
    data = movielens_100k(movielens_dir)
    user = data.users[42]
    assert (user.age, user.gender, user.occupation, user.zip_code) == (30, "M", "administrator", "17870")
    assert data.movies[543].title == "Misérables, Les (1995)"
    accented = [title for title in data.movies.titles() if not title.isascii()]
    assert len(accented) == 9 and "Á köldum klaka (Cold Fever) (1994)" in accented
    assert not any("Ã" in title or "\ufffd" in title for title in accented)  # no UTF-8 mojibake
    unknown = data.movies[267]
    assert unknown.title == "unknown" and unknown.release_date is None
    assert "year" not in unknown.metadata()
    assert check_metadata(data.movies.ids_str(), data.movies.metadata()) is not None
    assert next(iter(data.interactions.item_counts().items())) == ("50", 583)  # Star Wars is the most rated
    seen = data.interactions.items_by_user()
    assert len(seen) == 943 and len(seen["42"]) == 183


@pytest.mark.integration
def test_real_splits(movielens_dir: Path) -> None:
    train, test = canonical_split("u1", movielens_dir)
    assert (len(train), len(test)) == (80_000, 20_000)
    train, test = canonical_split("ua", movielens_dir)
    assert len(test) == 9_430 and all(len(test.for_user(u)) == 10 for u in (1, 42, 943))
    log = movielens_100k(movielens_dir).interactions
    train, test = random_split(log, test_fraction=0.2, seed=42)
    assert (len(train), len(test)) == (80_000, 20_000)
    train, test = per_user_split(log, test_fraction=0.25, seed=42)
    assert len(train) + len(test) == 100_000
    assert set(train.user_ids.tolist()) == set(test.user_ids.tolist()) == {str(u) for u in range(1, 944)}
    assert 0.24 < len(test) / 100_000 < 0.26
    # The published-protocol split is the one it always was (bundles and result tables depend on it).
    assert np.array_equal(_test_mask(log, test), _reference_per_user_split(log, 0.25, 42))
    assert len(train) == 74_992  # as recorded by bundles trained on this protocol
    train, test = temporal_split(log, 0.2)
    assert len(train) + len(test) == 100_000 and set(train.user_ids.tolist()) == {str(u) for u in range(1, 944)}
    assert train.timestamps is not None and test.timestamps is not None
    for user in ("1", "42", "943"):
        assert train.for_user(user).timestamps.max() <= test.for_user(user).timestamps.min()  # type: ignore[union-attr]


@pytest.mark.integration
def test_real_files_through_the_download_path(movielens_dir: Path, server: Server, tmp_path: Path) -> None:
    """A zip of the real files passes the published member checksums end to end."""
    real = zip_folder(movielens_dir, compression=zipfile.ZIP_STORED)  # deflating 16 MB is slow
    url = server.serve("/ml-100k.zip", real)
    members_only = Checksums(members=ML_100K_CHECKSUMS.members)  # our zip is not byte-identical to GroupLens'
    data = movielens_100k(cache_dir=tmp_path / "cache", url=url, checksums=members_only, progress=False)
    assert len(data.interactions) == 100_000
    assert (len(canonical_split("u1", cache_dir=tmp_path / "cache")[1])) == 20_000


@pytest.mark.integration
def test_real_cli_info(movielens_dir: Path) -> None:
    result = runner.invoke(app, ["data", "info", "--data-dir", str(movielens_dir)])
    assert result.exit_code == 0, result.output
    assert "100,000" in result.output and "1,664" in result.output and "93.70%" in result.output


def test_errors_share_the_root() -> None:
    assert issubclass(DatasetError, TwoStageRecError) and issubclass(ChecksumMismatchError, DatasetError)


def test_collections_repr_is_short(ml: Fixture) -> None:
    # A repr that printed every record would flood a REPL or a log line.
    data = movielens_100k(ml.folder, checksums=ml.checksums)
    assert repr(data.movies) == f"Movies(n={len(data.movies)})"
    assert repr(data.users) == f"Users(n={len(data.users)})"

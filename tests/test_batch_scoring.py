"""Batch scoring streams users in chunks through the assembler and writes JSON Lines atomically.

A small random bundle (tests/batch_bundles.py) served by the real assembler and
the exact in-memory store; every answer is compared with the one-user path.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from batch_bundles import USERS, write_small_bundle
from two_stage_rec.assembly import AssembledRecommender, assemble
from two_stage_rec.batch_scoring import (
    BatchScoringResult,
    count_user_ids,
    read_user_ids,
    recommendation_record,
    score_users,
)
from two_stage_rec.cli import app
from two_stage_rec.errors import InvalidFilterError, InvalidInputError
from two_stage_rec.recommender import Recommendation

UNKNOWN = ["new-1", "new-2"]
# 60 known users, 2 unknown, and 7 repeated: 69 lines, a prime, so no chunk size above 1 divides it.
INPUT = [*USERS[:30], UNKNOWN[0], *USERS[30:], UNKNOWN[1], *USERS[:7]]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_small_bundle(tmp_path_factory.mktemp("batch") / "models")


@pytest.fixture(scope="module")
def served(bundle: Path) -> Iterator[AssembledRecommender]:
    with assemble(bundle, store="memory") as recommender:
        yield recommender


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# ------------------------------------------------------------------ reading users


def test_read_user_ids_skips_blanks_and_comments_and_is_lazy(tmp_path: Path) -> None:
    path = tmp_path / "users.txt"
    path.write_text("# header\n u-001 \n\n  # indented comment\nu-002\nnew-1\n", encoding="utf-8")
    users = read_user_ids(path)
    assert isinstance(users, Iterator)
    assert next(users) == "u-001"  # one line read, the rest not yet
    assert list(users) == ["u-002", "new-1"]
    assert count_user_ids(path) == 3


@pytest.mark.parametrize("content", ["", "\n\n", "# only a comment\n"])
def test_a_file_without_ids_is_refused_when_read(tmp_path: Path, content: str) -> None:
    path = tmp_path / "users.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InvalidInputError, match="holds no user ids"):
        list(read_user_ids(path))
    with pytest.raises(InvalidInputError, match=r"--users-file .* holds no user ids"):
        count_user_ids(path, source=f"--users-file {path}")


def test_an_unreadable_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="cannot read users file"):
        list(read_user_ids(tmp_path / "missing.txt"))
    binary = tmp_path / "users.bin"
    binary.write_bytes(b"u-001\n\xff\xfe\n")
    with pytest.raises(InvalidInputError, match="cannot read"):
        list(read_user_ids(binary))


# ------------------------------------------------------------------ scoring


def expected_line(served: AssembledRecommender, user_id: str, k: int = 10) -> dict[str, Any]:
    """The one-user path's answer, as the batch writes it."""
    return recommendation_record(user_id, served.recommend(user_id, k=k))


@pytest.mark.parametrize("chunk_size", [1, 4, 10, 64, 1000])
def test_every_chunk_size_writes_each_user_as_the_one_user_path_answers(
    served: AssembledRecommender, tmp_path: Path, chunk_size: int
) -> None:
    output = tmp_path / "recs.jsonl"
    result = score_users(served, iter(INPUT), output, k=10, chunk_size=chunk_size)
    assert (result.users, result.from_model, result.fallback) == (len(INPUT), len(INPUT) - 2, 2)
    assert result.output == output and result.seconds > 0 and result.users_per_second > 0
    written = lines(output)
    assert [line["user_id"] for line in written] == INPUT
    for line in written:
        expected = expected_line(served, line["user_id"])
        assert line["source"] == expected["source"]
        assert [item["item_id"] for item in line["items"]] == [item["item_id"] for item in expected["items"]]
        assert [item["score"] for item in line["items"]] == pytest.approx(
            [item["score"] for item in expected["items"]], abs=1e-5
        )
    assert leftovers(tmp_path) == []


def test_unknown_users_get_the_popular_items_and_seen_items_are_left_out(
    served: AssembledRecommender, tmp_path: Path
) -> None:
    output = tmp_path / "recs.jsonl"
    score_users(served, ["u-003", "new-1"], output, k=5)
    known, unknown = lines(output)
    assert known["source"] == "model" and len(known["items"]) == 5
    assert not {item["item_id"] for item in known["items"]} & served.seen("u-003")
    scores = [item["score"] for item in known["items"]]
    assert scores == sorted(scores, reverse=True)  # best first: higher is better
    assert unknown["source"] == "fallback"
    assert [item["item_id"] for item in unknown["items"]] == list(served.bundle.popularity)[:5]


def test_include_seen_and_filter_reach_every_user(served: AssembledRecommender, tmp_path: Path) -> None:
    output = tmp_path / "recs.jsonl"
    score_users(served, USERS, output, k=3, include_seen=True, filter={"genre": "odd"}, chunk_size=7)
    metadata = served.bundle.catalogue.metadata_by_id()
    written = lines(output)
    assert all(metadata[item["item_id"]]["genre"] == "odd" for line in written for item in line["items"])
    assert any({item["item_id"] for item in line["items"]} & served.seen(line["user_id"]) for line in written)


class CountingRecommender:
    """The real recommender, noting how many users the input had yielded at each batch call."""

    def __init__(self, served: AssembledRecommender, consumed: list[int]) -> None:
        self.served = served
        self.consumed = consumed
        self.seen_at_call: list[int] = []

    def recommend_batch(self, user_ids: Sequence[str], **options: Any) -> list[list[Recommendation]]:
        self.seen_at_call.append(self.consumed[0])
        return self.served.recommend_batch(user_ids, **options)


def test_users_are_read_one_chunk_at_a_time(served: AssembledRecommender, tmp_path: Path) -> None:
    consumed = [0]

    def users() -> Iterator[str]:
        for n in range(1000):
            consumed[0] += 1
            yield USERS[n % len(USERS)]

    counting = CountingRecommender(served, consumed)
    result = score_users(counting, users(), tmp_path / "recs.jsonl", chunk_size=64)  # type: ignore[arg-type]
    assert result.users == 1000 and len(counting.seen_at_call) == 16  # 15 full chunks and 40 users
    # At the j-th call the input has yielded the j-th chunk, not more: memory holds one chunk.
    assert counting.seen_at_call == [min(64 * (j + 1), 1000) for j in range(16)]


# ------------------------------------------------------------------ bad input and atomic output


def test_bad_settings_and_empty_input_write_nothing(served: AssembledRecommender, tmp_path: Path) -> None:
    output = tmp_path / "recs.jsonl"
    with pytest.raises(InvalidInputError, match="candidates"):
        score_users(served, USERS, output, k=20, candidates=10)
    with pytest.raises(InvalidInputError, match="chunk_size"):
        score_users(served, USERS, output, chunk_size=0)
    with pytest.raises(InvalidInputError, match="k must be"):
        score_users(served, USERS, output, k=0)
    with pytest.raises(InvalidInputError, match="no user ids"):
        score_users(served, [], output)
    empty = tmp_path / "empty.txt"
    empty.write_text("# nobody\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="holds no user ids"):
        score_users(served, read_user_ids(empty), output)
    with pytest.raises(InvalidInputError, match="is a directory"):
        score_users(served, USERS, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.txt"]


def test_a_failed_run_keeps_the_previous_output_and_leaves_no_partial(
    served: AssembledRecommender, tmp_path: Path
) -> None:
    output = tmp_path / "recs.jsonl"
    output.write_text("previous run\n", encoding="utf-8")
    with pytest.raises(InvalidFilterError):
        score_users(served, USERS, output, filter={"genre": {"$regex": "o.*"}})

    def failing() -> Iterator[str]:
        yield from USERS  # two chunks written to the partial file, then the input fails
        raise InvalidInputError("the input broke")

    with pytest.raises(InvalidInputError, match="the input broke"):
        score_users(served, failing(), output, chunk_size=25)
    assert output.read_text(encoding="utf-8") == "previous run\n"
    assert leftovers(tmp_path) == []
    score_users(served, USERS, output)
    assert len(lines(output)) == len(USERS) and leftovers(tmp_path) == []


def test_the_output_folder_is_created(served: AssembledRecommender, tmp_path: Path) -> None:
    output = tmp_path / "deep" / "er" / "recs.jsonl"
    score_users(served, USERS[:3], output)
    assert len(lines(output)) == 3


def test_users_per_second_of_an_instant_run_is_zero() -> None:
    result = BatchScoringResult(output=Path("x.jsonl"), users=5, from_model=5, fallback=0, seconds=0.0)
    assert result.users_per_second == 0.0
    assert BatchScoringResult(Path("x"), 10, 9, 1, 2.0).users_per_second == 5.0


# ------------------------------------------------------------------ command line

runner = CliRunner()


def test_the_command_line_streams_a_users_file(bundle: Path, served: AssembledRecommender, tmp_path: Path) -> None:
    users_file = tmp_path / "users.txt"
    users_file.write_text("# ids\n" + "\n".join(INPUT) + "\n", encoding="utf-8")
    output = tmp_path / "out" / "recs.jsonl"
    args = ["recommend", "--models", str(bundle), "--store", "memory", "--users-file", str(users_file)]
    result = runner.invoke(app, [*args, "--output", str(output), "--k", "10", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert f"wrote {len(INPUT)} users to {output} ({len(INPUT) - 2} from the model, 2 unknown users" in result.output
    library = tmp_path / "library.jsonl"
    score_users(served, INPUT, library, k=10)
    assert output.read_bytes() == library.read_bytes()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "--users-file needs --output"),
        (["--output", "{out}", "--scheduler", "tcp://127.0.0.1:1", "--dask-workers", "2"], "not both"),
    ],
)
def test_the_command_line_refuses_bad_users_file_options(
    bundle: Path, tmp_path: Path, extra: list[str], message: str
) -> None:
    users_file = tmp_path / "users.txt"
    users_file.write_text("u-001\n", encoding="utf-8")
    out = tmp_path / "recs.jsonl"
    args = ["recommend", "--models", str(bundle), "--users-file", str(users_file), "--no-progress"]
    result = runner.invoke(app, [*args, *(arg.format(out=out) for arg in extra)])
    assert result.exit_code == 1 and message in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["users.txt"]


def test_the_command_line_refuses_an_empty_users_file_before_loading(tmp_path: Path) -> None:
    users_file = tmp_path / "users.txt"
    users_file.write_text("\n# none\n", encoding="utf-8")
    out = tmp_path / "recs.jsonl"
    # No bundle at --models: the empty file is reported first, so nothing was loaded either.
    args = ["recommend", "--models", str(tmp_path / "no-models"), "--users-file", str(users_file)]
    result = runner.invoke(app, [*args, "--output", str(out)])
    assert result.exit_code == 1 and f"--users-file {users_file} holds no user ids" in result.output
    assert not out.exists() and leftovers(tmp_path) == []


def test_dask_options_need_a_users_file(bundle: Path) -> None:
    result = runner.invoke(app, ["recommend", "--models", str(bundle), "--user", "u-001", "--dask-workers", "2"])
    assert result.exit_code == 1 and "score a --users-file" in result.output

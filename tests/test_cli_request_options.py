"""``two-stage-rec recommend --user``'s request options: --history, the policy options, --explain and --json.

Each answer is compared with what the library's
:class:`~two_stage_rec.assembly.AssembledRecommender` gives for the same
options, on a real bundle (random towers over the MovieLens-100K catalogue).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import two_stage_rec.assembly
from synthetic_models import write_synthetic_models
from test_recommender_request_options import SumFoldIn
from two_stage_rec.assembly import AssembledRecommender, assemble
from two_stage_rec.cli import app
from two_stage_rec.cli._choices import parse_history, policy_spec
from two_stage_rec.errors import InvalidInputError
from two_stage_rec.policies import parse_policies
from two_stage_rec.policies.spec import PolicySpec
from two_stage_rec.recommender import History, Recommendation

pytestmark = pytest.mark.integration

runner = CliRunner()
WIDE = {"COLUMNS": "300"}  # rich wraps the table at the terminal's width; labels must stay whole
NEW_HISTORY = ["50", "181", "172", "174"]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, movielens_dir: Path) -> Path:
    directory = tmp_path_factory.mktemp("cli-options") / "b"
    return write_synthetic_models(directory, dimension=8, seed=47, data_dir=movielens_dir)


def with_fold_in(served: AssembledRecommender) -> AssembledRecommender:
    """The bundle's fold-in when assembling gives one, else a test fold-in (a sum of the history's vectors)."""
    if served.recommender.fold_in is None:
        served.recommender.fold_in = SumFoldIn()
    return served


@pytest.fixture()
def folding(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command assembles its recommender with a fold-in (see :func:`with_fold_in`)."""
    original: Callable[..., AssembledRecommender] = two_stage_rec.assembly.assemble
    monkeypatch.setattr(two_stage_rec.assembly, "assemble", lambda *a, **kw: with_fold_in(original(*a, **kw)))


@pytest.fixture(scope="module")
def served(bundle: Path) -> AssembledRecommender:
    return with_fold_in(assemble(bundle, store="memory"))


def run(bundle: Path, *args: str) -> Any:
    result = runner.invoke(
        app, ["recommend", "--models", str(bundle), "--store", "memory", *args], env=WIDE, catch_exceptions=False
    )
    return result


def as_json(bundle: Path, *args: str) -> dict[str, Any]:
    result = run(bundle, "--json", *args)
    assert result.exit_code == 0, result.output
    parsed: dict[str, Any] = json.loads(result.stdout)  # one object, nothing else on stdout
    return parsed


def expected(
    served: AssembledRecommender,
    user: str,
    *,
    k: int = 10,
    history: History | None = None,
    policies: PolicySpec | None = None,
    explain: bool = False,
) -> list[Recommendation]:
    return served.recommend(user, k=k, history=history, policies=parse_policies(policies), explain=explain)


def same(items: list[dict[str, Any]], recommendations: list[Recommendation]) -> None:
    assert [item["item_id"] for item in items] == [rec.item_id for rec in recommendations]
    assert [item["source"] for item in items] == [rec.source for rec in recommendations]
    for item, rec in zip(items, recommendations, strict=True):
        if item["score"] is None:
            assert rec.source == "pinned"
        else:
            assert item["score"] == pytest.approx(rec.score, rel=1e-5, abs=1e-6)


def test_json_prints_one_object_with_the_user_and_every_item(bundle: Path, served: AssembledRecommender) -> None:
    record = as_json(bundle, "--user", "42", "--k", "5")
    assert {key: record[key] for key in ("user_id", "known", "folded_in", "fallback", "reranker")} == {
        "user_id": "42",
        "known": True,
        "folded_in": False,
        "fallback": False,
        "reranker": served.reranker_name,
    }
    recommendations = expected(served, "42", k=5)
    same(record["items"], recommendations)
    for rank, (item, rec) in enumerate(zip(record["items"], recommendations, strict=True), start=1):
        assert item["rank"] == rank
        assert item["label"] == served.label(rec.item_id)
        assert item["metadata"] == dict(rec.metadata)
        assert item["retrieval_score"] == pytest.approx(rec.retrieval_score, rel=1e-5)
        assert item["explanation"] is None
    stranger = as_json(bundle, "--user", "somebody-new", "--k", "3")
    assert stranger["fallback"] and not stranger["known"] and not stranger["folded_in"]
    assert all(item["source"] == "fallback" and item["retrieval_score"] is None for item in stranger["items"])


@pytest.mark.usefixtures("folding")
def test_history_folds_a_new_user_in(bundle: Path, served: AssembledRecommender) -> None:
    record = as_json(bundle, "--user", "somebody-new", "--k", "6", "--history", ",".join(NEW_HISTORY))
    assert record["folded_in"] and not record["fallback"] and not record["known"]
    same(record["items"], expected(served, "somebody-new", k=6, history=NEW_HISTORY))
    assert not {item["item_id"] for item in record["items"]} & set(NEW_HISTORY)
    rated = {"50": 5.0, "98": 4.5, "1": 1.0}
    by_rating = as_json(bundle, "--user", "somebody-new", "--k", "6", "--history", "50=5, 98=4.5, 1=1")
    same(by_rating["items"], expected(served, "somebody-new", k=6, history=rated))
    # The table says the user was folded in and leaves the history out as seen.
    table = run(bundle, "--user", "somebody-new", "--k", "3", "--history", ",".join(NEW_HISTORY))
    assert table.exit_code == 0, table.output
    title = " ".join(table.stdout.split())  # rich wraps the title at the table's width
    assert "folded in from the given history" in title and f"{len(NEW_HISTORY)} seen items left out" in title


def test_policy_options_are_the_library_policies(bundle: Path, served: AssembledRecommender) -> None:
    diverse = as_json(bundle, "--user", "42", "--diversity", "0.3", "--max-per", "genres=2")
    same(diverse["items"], expected(served, "42", policies={"mmr": 0.3, "max_per": {"genres": 2}}))
    plain = [rec.item_id for rec in expected(served, "42")]
    assert [item["item_id"] for item in diverse["items"]] != plain
    outside = next(rec.item_id for rec in expected(served, "42", k=50)[30:] if rec.item_id not in plain)
    rules: PolicySpec = {
        "block": [plain[0], plain[2]],
        "boost": [{"filter": {"year": {"$lt": 1980}}}],
        "bury": [{"filter": {"genres": {"$in": ["Drama"]}}}],
        "pin": {outside: 2},
    }
    args = ["--block", f"{plain[0]},{plain[2]}", "--boost", '{"year": {"$lt": 1980}}']
    args += ["--bury", '{"genres": {"$in": ["Drama"]}}', "--pin", f"{outside}=2"]
    shaped = as_json(bundle, "--user", "42", *args)
    same(shaped["items"], expected(served, "42", policies=rules))
    assert shaped["items"][1]["item_id"] == outside
    assert not {plain[0], plain[2]} & {item["item_id"] for item in shaped["items"]}


@pytest.mark.usefixtures("folding")
def test_explain_names_history_items_source_and_rank(bundle: Path, served: AssembledRecommender) -> None:
    record = as_json(bundle, "--user", "42", "--k", "5", "--explain")
    recommendations = expected(served, "42", k=5, explain=True)
    same(record["items"], recommendations)
    for item, rec in zip(record["items"], recommendations, strict=True):
        assert rec.explanation is not None
        explanation = item["explanation"]
        assert [(near["item_id"], near["label"]) for near in explanation["because"]] == [
            (near, served.label(near)) for near, _ in rec.explanation.because
        ]
        assert [near["similarity"] for near in explanation["because"]] == pytest.approx(
            [similarity for _, similarity in rec.explanation.because]
        )
        assert explanation["candidate_source"] == rec.explanation.candidate_source == "index"
        assert explanation["retrieval_rank"] == rec.explanation.retrieval_rank
    # The table's "because" column names the nearest history items by their labels, then source and rank.
    table = run(bundle, "--user", "somebody-new", "--k", "3", "--explain", "--history", ",".join(NEW_HISTORY))
    assert table.exit_code == 0, table.output
    assert "because" in table.stdout
    new = expected(served, "somebody-new", k=3, history=NEW_HISTORY, explain=True)
    for rec in new:
        assert rec.explanation is not None and rec.explanation.because
        near = " and ".join(served.label(item) for item, _ in rec.explanation.because)
        assert f"{near}; index #{rec.explanation.retrieval_rank}" in table.stdout
    plain = run(bundle, "--user", "42", "--k", "3")
    assert "because" not in plain.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--history", "50,,181"], "--history needs comma-separated values"),
        (["--history", "50=5,181"], "either ids"),
        (["--history", "50=five"], "finite number"),
        (["--history", "50=nan"], "finite number"),
        (["--history", "50=5,50=4"], "twice"),
        (["--max-per", "genres"], "--max-per needs FIELD=N"),
        (["--pin", "50=first"], "--pin needs ITEM=POS"),
        (["--pin", "50=0"], "position"),
        (["--boost", "{not json"], "--boost is not JSON"),
        (["--bury", "[1]"], "--bury must be a JSON object"),
        (["--boost", '{"year": {"$near": 1}}'], "$near"),
        (["--block", "50,"], "--block needs comma-separated values"),
    ],
)
def test_bad_options_fail_before_the_bundle_is_read(tmp_path: Path, args: list[str], message: str) -> None:
    missing = tmp_path / "no-bundle-here"  # the options are checked first: the bundle is never opened
    result = run(missing, "--user", "42", *args)
    assert result.exit_code == 1, result.output
    assert "error:" in result.stderr and message in result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""


def test_out_of_range_diversity_is_a_usage_error(bundle: Path) -> None:
    result = run(bundle, "--user", "42", "--diversity", "1.5")
    assert result.exit_code == 2 and "--diversity" in result.stderr


def test_a_history_for_a_recommender_without_fold_in_is_an_error(bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original: Callable[..., AssembledRecommender] = two_stage_rec.assembly.assemble

    def without_fold_in(*args: Any, **kwargs: Any) -> AssembledRecommender:
        served = original(*args, **kwargs)
        served.recommender.fold_in = None
        return served

    monkeypatch.setattr(two_stage_rec.assembly, "assemble", without_fold_in)
    result = run(bundle, "--user", "42", "--history", "50")
    assert result.exit_code == 1 and "fold_in" in result.stderr and "Traceback" not in result.output


def test_request_options_are_for_one_user(bundle: Path, tmp_path: Path) -> None:
    users = tmp_path / "users.txt"
    users.write_text("1\n2\n", encoding="utf-8")
    for option in (["--explain"], ["--json"], ["--history", "50"], ["--diversity", "0.2"]):
        result = run(bundle, "--users-file", str(users), "--output", str(tmp_path / "o.jsonl"), *option)
        assert result.exit_code == 1 and "apply to one --user" in result.stderr, option
    assert not (tmp_path / "o.jsonl").exists()


def test_the_option_parsers() -> None:
    assert parse_history(None) is None
    assert parse_history(" 50 , 181 ") == ["50", "181"]
    assert parse_history("50=5,181=-1.5") == {"50": 5.0, "181": -1.5}
    assert policy_spec() == {}
    assert policy_spec(diversity=0.0, max_per=["genres=2"], pin=["50=1"], block="1, 2") == {
        "max_per": {"genres": 2},
        "pin": {"50": 1},
        "block": ["1", "2"],
    }
    assert policy_spec(boost=['{"year": 1990}'], bury=['{"year": 1991}']) == {
        "boost": [{"filter": {"year": 1990}}],
        "bury": [{"filter": {"year": 1991}}],
    }
    with pytest.raises(InvalidInputError):
        parse_history("")

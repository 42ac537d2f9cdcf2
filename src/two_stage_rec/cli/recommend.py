"""``two-stage-rec recommend``: top-k items for one user (a table) or for a file of users (JSON Lines)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from two_stage_rec.cli._choices import (
    BackendChoice,
    BackendOption,
    CandidatesOption,
    IncludeSeenOption,
    ModelsOption,
    PineconeHostOption,
    PineconeIndexOption,
    RerankerChoice,
    RerankerOption,
    StoreChoice,
    StoreOption,
    StoreSettingOption,
    store_settings,
)
from two_stage_rec.errors import InvalidInputError, TwoStageRecError

if TYPE_CHECKING:
    from two_stage_rec.assembly import AssembledRecommender
    from two_stage_rec.recommender import Recommendation

__all__ = ["read_user_ids", "recommend", "register", "write_recommendations"]

_BATCH = 256
"""Users per recommend_batch call: large enough to amortise the Python path, small enough for steady progress."""


def read_user_ids(path: Path) -> list[str]:
    """User ids from a file, one per line; blank lines and lines starting with ``#`` are skipped.

    Raises:
        InvalidInputError: the file cannot be read or holds no id.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InvalidInputError(f"cannot read --users-file {path}: {exc}") from exc
    users = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not users:
        raise InvalidInputError(f"--users-file {path} holds no user ids")
    return users


def _record(user_id: str, recommendations: list[Recommendation]) -> dict[str, Any]:
    fallback = bool(recommendations) and recommendations[0].source == "fallback"
    return {
        "user_id": user_id,
        "items": [{"item_id": rec.item_id, "score": round(float(rec.score), 6)} for rec in recommendations],
        "source": "fallback" if fallback else "model",
    }


def write_recommendations(
    served: AssembledRecommender,
    users: list[str],
    output: Path,
    *,
    k: int,
    candidates: int,
    include_seen: bool,
    filter: dict[str, Any] | None,
    progress: bool,
) -> dict[str, int]:
    """Write one JSON object per user to ``output``; returns counts of ``model`` and ``fallback`` answers.

    Each line: ``{"user_id": ..., "items": [{"item_id": ..., "score": ...}, ...], "source": "model"|"fallback"}``,
    best first; ``source`` is ``"fallback"`` for users the models were not trained on.
    The file is written to a temporary sibling and renamed, so a failed run leaves no partial file.
    """
    from tqdm.auto import tqdm

    counts = {"model": 0, "fallback": 0}
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.partial")
    with (
        open(partial, "w", encoding="utf-8") as handle,
        tqdm(total=len(users), unit="user", desc="recommending", disable=not progress) as bar,
    ):
        for start in range(0, len(users), _BATCH):
            batch = users[start : start + _BATCH]
            results = served.recommend_batch(
                batch, k=k, candidates=candidates, filter=filter, include_seen=include_seen
            )
            for user_id, recommendations in zip(batch, results, strict=True):
                record = _record(user_id, recommendations)
                counts[record["source"]] += 1
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            bar.update(len(batch))
    partial.replace(output)
    return counts


def _print_user(served: AssembledRecommender, user: str, rows: list[Recommendation], k: int) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    seen = served.seen(user)
    if rows and rows[0].source == "fallback":
        title = f"User {user} is unknown to the models: the most popular items (fallback)"
    else:
        title = f"Top {k} for user {user} (reranker: {served.reranker_name}; {len(seen)} seen items left out)"
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("item")
    table.add_column("id")
    table.add_column("score", justify="right")
    shown = sorted({key for rec in rows for key in rec.metadata} - {"title", "name"})[:4]
    for key in shown:
        table.add_column(key)
    for rank, rec in enumerate(rows, start=1):
        extra = []
        for key in shown:
            value = rec.metadata.get(key, "")
            extra.append(", ".join(value) if isinstance(value, list) else str(value))
        table.add_row(str(rank), served.label(rec.item_id), rec.item_id, f"{rec.score:.3f}", *extra)
    console.print(table)


def recommend(
    models: ModelsOption = Path("models"),
    user: Annotated[str | None, typer.Option("--user", help="One user id: print a table.")] = None,
    users_file: Annotated[
        Path | None,
        typer.Option("--users-file", help="A file of user ids, one per line: write --output.", dir_okay=False),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", help="JSON Lines file for --users-file (one object per user).", dir_okay=False),
    ] = None,
    k: Annotated[int, typer.Option("--k", min=1, help="Recommendations per user.")] = 10,
    candidates: CandidatesOption = 50,
    include_seen: IncludeSeenOption = False,
    filter_json: Annotated[
        str | None,
        typer.Option("--filter", help='Metadata filter (Pinecone filter language), e.g. \'{"year": {"$gte": 1990}}\'.'),
    ] = None,
    reranker: RerankerOption = RerankerChoice.recommended,
    store: StoreOption = StoreChoice.faiss,  # type: ignore[attr-defined]
    store_setting: StoreSettingOption = None,
    pinecone_index: PineconeIndexOption = None,
    pinecone_host: PineconeHostOption = None,
    backend: BackendOption = BackendChoice.numpy,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Progress bar for --users-file.")] = True,
) -> None:
    """Recommend from a bundle: the top k for --user, or for every user of --users-file into --output.

    Seen items are left out unless --include-seen; users the models were not
    trained on get the most popular items, marked as fallback.
    """
    from rich.console import Console
    from rich.markup import escape

    from two_stage_rec.assembly import assemble

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        if (user is None) == (users_file is None):
            raise InvalidInputError("pass either --user ID or --users-file FILE (with --output FILE.jsonl)")
        if users_file is not None and output is None:
            raise InvalidInputError("--users-file needs --output FILE.jsonl")
        if candidates < k:
            raise InvalidInputError(f"--candidates ({candidates}) must be at least --k ({k})")
        filter = _parse_filter(filter_json)
        users = read_user_ids(users_file) if users_file is not None else []
        settings = store_settings(store_setting, pinecone_index=pinecone_index, pinecone_host=pinecone_host)
        with assemble(
            models, store=store.value, store_settings=settings, backend=backend.value, reranker=reranker.value
        ) as served:
            if user is not None:
                rows = served.recommend(user, k=k, candidates=candidates, filter=filter, include_seen=include_seen)
                _print_user(served, user, rows, k)
                return
            assert output is not None
            counts = write_recommendations(
                served,
                users,
                output,
                k=k,
                candidates=candidates,
                include_seen=include_seen,
                filter=filter,
                progress=progress,
            )
    except TwoStageRecError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(code=1) from None
    err.print(
        f"wrote {len(users):,} users to {output} ({counts['model']:,} from the model, "
        f"{counts['fallback']:,} unknown users given the fallback)"
    )


def _parse_filter(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        raise InvalidInputError(f"--filter is not JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise InvalidInputError("--filter must be a JSON object")
    return parsed


def register(app: typer.Typer) -> None:
    """Add the ``recommend`` command to ``app``."""
    app.command("recommend")(recommend)

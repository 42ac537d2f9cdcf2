"""``two-stage-rec recommend``: top-k items for one user (a table) or for a file of users (JSON Lines)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from two_stage_rec.cli._choices import (
    BackendChoice,
    BackendOption,
    BlockOption,
    BoostOption,
    BuryOption,
    CandidatesOption,
    DiversityOption,
    ExplainOption,
    HistoryOption,
    IncludeSeenOption,
    MaxPerOption,
    ModelsOption,
    PineconeHostOption,
    PineconeIndexOption,
    PinOption,
    RerankerChoice,
    RerankerOption,
    StoreChoice,
    StoreOption,
    StoreSettingOption,
    parse_history,
    policy_spec,
    store_settings,
)
from two_stage_rec.errors import InvalidInputError, TwoStageRecError

if TYPE_CHECKING:
    from two_stage_rec.assembly import AssembledRecommender
    from two_stage_rec.batch_scoring import BatchScoringResult
    from two_stage_rec.explain import Explanation
    from two_stage_rec.recommender import History, Recommendation

__all__ = ["recommend", "register"]


def _score_users_file(
    models: Path,
    users_file: Path,
    output: Path,
    *,
    scheduler: str | None,
    dask_workers: int | None,
    store: str,
    settings: dict[str, Any],
    backend: BackendChoice,
    reranker: RerankerChoice,
    k: int,
    candidates: int,
    include_seen: bool,
    filter: dict[str, Any] | None,
    progress: bool,
) -> BatchScoringResult:
    """Stream --users-file into --output: in this process, or on a Dask cluster when asked."""
    from two_stage_rec.batch_scoring import count_user_ids, read_user_ids, score_users

    source = f"--users-file {users_file}"
    # One streaming pass first: an empty or unreadable file fails before a bundle or a cluster is loaded,
    # and the progress bar knows its total.
    total = count_user_ids(users_file, source=source)
    users = read_user_ids(users_file, source=source)
    options: dict[str, Any] = {
        "k": k,
        "candidates": candidates,
        "include_seen": include_seen,
        "filter": filter,
        "progress": progress,
        "total": total,
    }
    if scheduler is not None or dask_workers is not None:
        from two_stage_rec.distributed import BundleSpec, dask_client, score_users_distributed

        spec = BundleSpec(
            path=str(models.resolve()),
            store=store,
            store_settings=settings,
            backend=backend.value,
            reranker=reranker.value,
        )
        with dask_client(scheduler, workers=dask_workers) as client:
            return score_users_distributed(client, spec, users, output, **options)
    from two_stage_rec.assembly import assemble

    with assemble(
        models, store=store, store_settings=settings, backend=backend.value, reranker=reranker.value
    ) as served:
        return score_users(served, users, output, **options)


def _title(served: AssembledRecommender, user: str, rows: list[Recommendation], k: int, left_out: int) -> str:
    if rows and rows[0].source == "fallback":
        return f"User {user} is unknown to the models: the most popular items (fallback)"
    folded = ", folded in from the given history" if rows and rows[0].folded_in else ""
    return f"Top {k} for user {user}{folded} (reranker: {served.reranker_name}; {left_out} seen items left out)"


def _because(served: AssembledRecommender, explanation: Explanation) -> str:
    """The "because" cell: the nearest history items by label, then where the item came from."""
    # Labels only: the similarities are in --json, and the table is narrow enough already.
    near = " and ".join(served.label(item) for item, _ in explanation.because)
    origin = explanation.candidate_source
    if explanation.retrieval_rank is not None:
        origin += f" #{explanation.retrieval_rank}"
    return f"{near}; {origin}" if near else origin


def _print_user(served: AssembledRecommender, user: str, rows: list[Recommendation], k: int, *, left_out: int) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=_title(served, user, rows, k, left_out), title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("item")
    table.add_column("id")
    table.add_column("score", justify="right")
    shown = sorted({key for rec in rows for key in rec.metadata} - {"title", "name"})[:4]
    for key in shown:
        table.add_column(key)
    explained = any(rec.explanation is not None for rec in rows)
    if explained:
        table.add_column("because")
    for rank, rec in enumerate(rows, start=1):
        extra = []
        for key in shown:
            value = rec.metadata.get(key, "")
            extra.append(", ".join(value) if isinstance(value, list) else str(value))
        if explained:
            extra.append(_because(served, rec.explanation) if rec.explanation is not None else "")
        table.add_row(str(rank), served.label(rec.item_id), rec.item_id, f"{rec.score:.3f}", *extra)
    console.print(table)


def _finite(value: float) -> float | None:
    """JSON has no NaN or infinity: a score without a value (not retrieved, pinned unranked) is null."""
    return value if math.isfinite(value) else None


def _explanation_record(served: AssembledRecommender, explanation: Explanation) -> dict[str, Any]:
    return {
        "because": [
            {"item_id": item, "label": served.label(item), "similarity": similarity}
            for item, similarity in explanation.because
        ],
        "candidate_source": explanation.candidate_source,
        "retrieval_rank": explanation.retrieval_rank,
        "contributions": [{"feature": feature, "contribution": value} for feature, value in explanation.contributions],
    }


def _user_record(served: AssembledRecommender, user: str, rows: list[Recommendation]) -> dict[str, Any]:
    """The ``--json`` object: the user, how it was answered, and every item best first."""
    return {
        "user_id": user,
        "known": served.is_known(user),
        "folded_in": bool(rows) and rows[0].folded_in,
        "fallback": bool(rows) and rows[0].source == "fallback",
        "reranker": served.reranker_name,
        "items": [
            {
                "rank": rank,
                "item_id": rec.item_id,
                "label": served.label(rec.item_id),
                "score": _finite(rec.score),
                "retrieval_score": _finite(rec.retrieval_score),
                "source": rec.source,
                "metadata": dict(rec.metadata),
                "explanation": None if rec.explanation is None else _explanation_record(served, rec.explanation),
            }
            for rank, rec in enumerate(rows, start=1)
        ],
    }


def _left_out(served: AssembledRecommender, user: str, history: History | None, include_seen: bool) -> int:
    """Items left out as already seen: the training ones and the given history's."""
    if include_seen:
        return 0
    return len(served.seen(user) | frozenset(history or ()))


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
    history_text: HistoryOption = None,
    diversity: DiversityOption = 0.0,
    max_per: MaxPerOption = None,
    boost: BoostOption = None,
    bury: BuryOption = None,
    pin: PinOption = None,
    block: BlockOption = None,
    explain: ExplainOption = False,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print one JSON object (the user, and per item its id, score, source, ...)."),
    ] = False,
    reranker: RerankerOption = RerankerChoice.recommended,
    store: StoreOption = StoreChoice.faiss,  # type: ignore[attr-defined]
    store_setting: StoreSettingOption = None,
    pinecone_index: PineconeIndexOption = None,
    pinecone_host: PineconeHostOption = None,
    backend: BackendOption = BackendChoice.numpy,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Progress bar for --users-file.")] = True,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            help="Score --users-file on a running Dask cluster: its scheduler address, e.g. tcp://10.0.0.5:8786 "
            "(extra: dask; the bundle and --output's folder must be at the same path on every worker).",
        ),
    ] = None,
    dask_workers: Annotated[
        int | None,
        typer.Option("--dask-workers", min=1, help="Score --users-file on a local Dask cluster of N worker processes."),
    ] = None,
) -> None:
    """Recommend from a bundle: the top k for --user, or for every user of --users-file into --output.

    Seen items are left out unless --include-seen; users the models were not
    trained on get the most popular items, marked as fallback, unless --history
    gives their interactions. --diversity, --max-per, --boost, --bury, --pin and
    --block shape the list after ranking (block, boost, bury, diversity, caps,
    pins, in that order).
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
        if users_file is None and (scheduler is not None or dask_workers is not None):
            raise InvalidInputError("--scheduler and --dask-workers score a --users-file")
        if scheduler is not None and dask_workers is not None:
            raise InvalidInputError("pass either --scheduler ADDRESS or --dask-workers N, not both")
        if candidates < k:
            raise InvalidInputError(f"--candidates ({candidates}) must be at least --k ({k})")
        filter = _parse_filter(filter_json)
        history = parse_history(history_text)
        spec = policy_spec(diversity=diversity, max_per=max_per, boost=boost, bury=bury, pin=pin, block=block)
        if users_file is not None and (history is not None or spec or explain or as_json):
            raise InvalidInputError(
                "--history, --diversity, --max-per, --boost, --bury, --pin, --block, --explain and --json "
                "apply to one --user"
            )
        from two_stage_rec.policies import parse_policies

        # Checked before the bundle is loaded: a bad option fails at once.
        policies = parse_policies(spec)
        settings = store_settings(store_setting, pinecone_index=pinecone_index, pinecone_host=pinecone_host)
        if users_file is not None:
            assert output is not None
            result = _score_users_file(
                models,
                users_file,
                output,
                scheduler=scheduler,
                dask_workers=dask_workers,
                store=store.value,
                settings=settings,
                backend=backend,
                reranker=reranker,
                k=k,
                candidates=candidates,
                include_seen=include_seen,
                filter=filter,
                progress=progress,
            )
            err.print(
                f"wrote {result.users:,} users to {output} ({result.from_model:,} from the model, "
                f"{result.fallback:,} unknown users given the fallback)"
            )
            return
        with assemble(
            models, store=store.value, store_settings=settings, backend=backend.value, reranker=reranker.value
        ) as served:
            if user is not None:
                rows = served.recommend(
                    user,
                    k=k,
                    candidates=candidates,
                    filter=filter,
                    include_seen=include_seen,
                    history=history,
                    policies=policies,
                    explain=explain,
                )
                if as_json:
                    typer.echo(json.dumps(_user_record(served, user, rows), ensure_ascii=False, allow_nan=False))
                else:
                    _print_user(served, user, rows, k, left_out=_left_out(served, user, history, include_seen))
                return
    except TwoStageRecError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(code=1) from None


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

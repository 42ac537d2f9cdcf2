"""``two-stage-rec recommend``: top-k movies for one user, with and without reranking."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import typer

from two_stage_rec.cli._choices import BackendChoice, StoreChoice
from two_stage_rec.errors import InvalidInputError, ModelError, TwoStageRecError

if TYPE_CHECKING:
    from rich.table import Table

    from two_stage_rec.artifacts import LoadedModels
    from two_stage_rec.protocols import VectorStore
    from two_stage_rec.recommender import Recommendation

__all__ = ["recommend", "register"]


def _check_index(store: VectorStore, models: LoadedModels, item_ids: list[str], where: Path) -> None:
    """A saved index must hold the vectors these models give, or results would silently be wrong."""
    stats = store.describe()
    if stats.dimension != models.item_embedder.dimension or stats.count != len(item_ids):
        raise ModelError(
            f"index {where} holds {stats.count} vectors of dimension {stats.dimension}; the models give "
            f"{len(item_ids)} of dimension {models.item_embedder.dimension}. Delete it to rebuild."
        )
    sample = item_ids[:: max(1, len(item_ids) // 20)]
    fetched = store.fetch(sample)
    expected = models.item_embedder.embed(fetched.ids)
    if fetched.missing or not np.allclose(fetched.vectors, expected, atol=1e-4):
        raise ModelError(f"index {where} was built from other models. Delete it to rebuild.")


def _table(title: str, rows: list[Recommendation], titles: dict[str, str], reranked: bool) -> Table:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("movie")
    table.add_column("id", justify="right")
    table.add_column("retrieval score", justify="right")
    if reranked:
        table.add_column("predicted rating", justify="right")
    for rank, item in enumerate(rows, start=1):
        cells = [str(rank), titles.get(item.item_id, "?"), item.item_id, f"{item.retrieval_score:.3f}"]
        if reranked:
            cells.append(f"{item.score:.2f}")
        table.add_row(*cells)
    return table


def recommend(
    models: Annotated[
        Path,
        typer.Option("--models", help="Models directory written by `two-stage-rec train`.", file_okay=False),
    ],
    user: Annotated[str, typer.Option("--user", help="MovieLens user id, e.g. 55.")],
    k: Annotated[int, typer.Option("--k", min=1, help="Recommendations to show.")] = 5,
    candidates: Annotated[
        int, typer.Option("--candidates", min=1, help="Movies retrieved from the index before reranking.")
    ] = 50,
    backend: Annotated[
        BackendChoice,
        typer.Option(
            "--backend",
            help="numpy: embedding tables + numpy MLP (fast, no TensorFlow); tensorflow: the SavedModels.",
        ),
    ] = BackendChoice.numpy,
    store: Annotated[
        StoreChoice,
        typer.Option("--store", help="Vector index: exact FAISS flat index, or the numpy reference store."),
    ] = StoreChoice.faiss,
    index: Annotated[
        Path | None,
        typer.Option(
            "--index",
            help="FAISS index directory: loaded when it exists, else built and saved there. "
            "Default: build in memory each run (1,682 movies take milliseconds).",
            file_okay=False,
        ),
    ] = None,
    exclude_seen: Annotated[
        bool,
        typer.Option("--exclude-seen/--no-exclude-seen", help="Leave out movies the user has already rated."),
    ] = True,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="An existing ml-100k folder. Default: $TWO_STAGE_REC_DATA, else the cache (downloading if needed).",
            file_okay=False,
        ),
    ] = None,
) -> None:
    """Print a user's top-k movies: by retrieval score alone, and reranked by the
    scoring model, beside the movies the user rated highest."""
    from rich.console import Console
    from rich.markup import escape

    from two_stage_rec.datasets import movielens_100k, seen_items_by_user
    from two_stage_rec.pipeline import build_recommender
    from two_stage_rec.recommender import Recommender

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    out = Console()
    try:
        if candidates < k:
            raise InvalidInputError(f"--candidates ({candidates}) must be at least --k ({k})")
        if index is not None and store is not StoreChoice.faiss:
            raise InvalidInputError("--index needs --store faiss")
        data = movielens_100k(data_dir, progress=False)
        built = (
            build_recommender(models, store=store.value, backend=backend.value, data=data)
            if (index is None or not index.exists())
            else None
        )
        if built is not None:
            recommender = built.recommender
            if index is not None:
                from two_stage_rec.stores.faiss import FaissVectorStore

                assert isinstance(recommender.store, FaissVectorStore)  # --index implies --store faiss
                recommender.store.save(index)
                err.print(f"saved the index of {built.indexed} movies to {index}")
        else:
            assert index is not None
            from two_stage_rec.artifacts import load_models
            from two_stage_rec.cold_start import PopularityFallback
            from two_stage_rec.datasets import item_popularity
            from two_stage_rec.stores.faiss import FaissVectorStore

            popularity = item_popularity(data.ratings)
            loaded_models = load_models(models, backend=backend.value)
            loaded_store = FaissVectorStore.load(index)
            _check_index(loaded_store, loaded_models, data.movies.ids_str(), index)
            recommender = Recommender(
                user_embedder=loaded_models.user_embedder,
                item_embedder=loaded_models.item_embedder,
                store=loaded_store,
                reranker=loaded_models.reranker,
                fallback=PopularityFallback(list(popularity), scores=list(popularity.values())),
            )
            err.print(f"loaded the index from {index}")
        seen = seen_items_by_user(data.ratings).get(user, set())
        exclude = seen if exclude_seen else set()
        plain = recommender.recommend(user, k=k, candidates=candidates, exclude=exclude, rerank=False)
        reranked = recommender.recommend(user, k=k, candidates=candidates, exclude=exclude, rerank=True)
    except TwoStageRecError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(code=1) from None

    titles = {movie.id_str: movie.title for movie in data.movies}
    history = data.ratings.for_user(user) if user.isdigit() else None
    if history is not None and len(history):
        from rich.table import Table

        order = np.lexsort((history.timestamps, -history.ratings))[:k]
        liked = Table(title=f"User {user}'s top ratings ({len(history)} rated)", title_justify="left")
        liked.add_column("movie")
        liked.add_column("rating", justify="right")
        for row in order:
            liked.add_row(titles.get(str(history.item_ids[row]), "?"), f"{history.ratings[row]:.0f}")
        out.print(liked)
    if plain and plain[0].source == "fallback":
        from rich.table import Table

        popular = Table(title=f"User {user} is unknown to the models: the most-rated movies", title_justify="left")
        popular.add_column("#", justify="right")
        popular.add_column("movie")
        popular.add_column("id", justify="right")
        popular.add_column("ratings", justify="right")
        for rank, item in enumerate(plain, start=1):
            popular.add_row(str(rank), titles.get(item.item_id, "?"), item.item_id, f"{item.score:.0f}")
        out.print(popular)
        return
    seen_note = f", {len(exclude)} rated movies left out" if exclude else ""
    out.print(_table(f"Top {k} by retrieval (dot product){seen_note}", plain, titles, reranked=False))
    out.print(
        _table(f"Top {k} of {candidates} candidates, reranked by the scoring model", reranked, titles, reranked=True)
    )


def register(app: typer.Typer) -> None:
    """Add the ``recommend`` command to ``app``."""
    app.command("recommend")(recommend)

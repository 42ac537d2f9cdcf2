"""``two-stage-rec demo``: the notebook, end to end, for one user.

Trains the models on first use (about a minute; cached in ``--models``),
puts every movie's vector in a vector index, and shows a user's top movies
ranked by retrieval alone and after reranking, next to the movies they rated.
"""

from __future__ import annotations

import html
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, TypeAlias

import typer

from two_stage_rec.errors import InvalidInputError, TwoStageRecError
from two_stage_rec.protocols import VectorStore
from two_stage_rec.recommender import Recommendation, Recommender
from two_stage_rec.rerankers.blend import BLEND_FILE, BlendReranker

__all__ = ["DemoResult", "StoreChoice", "build_store", "ensure_models", "register", "render_html", "run_demo"]

StoreChoice: TypeAlias = Literal["faiss", "memory", "pinecone"]
STORE_CHOICES: tuple[StoreChoice, ...] = ("faiss", "memory", "pinecone")

DEFAULT_MODELS = Path("models")
"""Where the demo caches its models (relative to the working directory, as ``make demo`` runs)."""

PosterUrl: TypeAlias = Callable[[str, str], str | None]
"""(movie id, title) -> poster image URL, or None for no image."""


@dataclass(frozen=True)
class RatedMovie:
    """One movie the user rated: id, title and stars (1-5)."""

    movie_id: str
    title: str
    rating: float


@dataclass(frozen=True)
class DemoResult:
    """Everything the demo shows for one user.

    Attributes:
        user_id: the user.
        profile: every movie the user rated, best rated first.
        retrieval: top k by retrieval score alone (stage 1 only).
        reranked: top k after the scoring model reordered the candidates.
        blended: top k after the learned blend reordered the same candidates
            (None when the models directory has no ``blend_reranker.npz``).
        candidates: candidates retrieved before reranking.
        store: description of the vector store used.
        models: the models directory used.
        excluded_seen: whether the user's rated movies were left out.
        trained_now: whether the models were trained during this run.
    """

    user_id: str
    profile: list[RatedMovie]
    retrieval: list[Recommendation]
    reranked: list[Recommendation]
    blended: list[Recommendation] | None
    candidates: int
    store: str
    models: Path
    excluded_seen: bool
    trained_now: bool


def ensure_models(models_dir: Path, *, data_dir: Path | None = None, progress: bool = True) -> bool:
    """Train and save models into ``models_dir`` unless it already holds them.

    The models are trained on the notebook's protocol: a random 80/20 split
    of the ratings (seed 42), so the held-out 20% stays unseen by the models;
    a blend reranker is fitted for them too
    (:func:`~two_stage_rec.training.blend.train_with_blend`).

    Returns:
        True when models were trained now, False when they were already there.

    Raises:
        MissingDependencyError: training needs the ``tensorflow`` extra.
    """
    from two_stage_rec.artifacts import missing_artifacts

    if models_dir.is_dir() and not missing_artifacts(models_dir, "numpy"):
        return False
    from two_stage_rec.datasets import movielens_100k, random_split

    _require_tensorflow()
    from two_stage_rec.training.blend import PIPELINE_CONFIG, train_with_blend

    data = movielens_100k(data_dir, progress=progress)
    train, test = random_split(data.ratings, 0.2, seed=42)
    trained = train_with_blend(train, test=test, items=data.movies.ids_str(), config=PIPELINE_CONFIG, progress=progress)
    trained.save(models_dir, saved_models=_want_saved_models())
    from two_stage_rec.cli.evaluate import write_protocol_marker

    write_protocol_marker(models_dir, "random", len(train))
    return True


def _want_saved_models() -> bool:
    """SavedModels are the notebook's format but take a while to export; tests may skip them."""
    return os.environ.get("TWO_STAGE_REC_DEMO_SAVED_MODELS", "1") != "0"


def _require_tensorflow() -> None:
    """Fail early, before loading data, when training is impossible (without paying TF's import time)."""
    import importlib.util

    from two_stage_rec.errors import MissingDependencyError

    if importlib.util.find_spec("tensorflow") is None:
        raise MissingDependencyError("tensorflow", "tensorflow")


def build_store(
    kind: StoreChoice, *, dimension: int, pinecone_index: str | None = None, pinecone_host: str | None = None
) -> VectorStore:
    """A fresh, empty vector store of the given kind (dot product, as in the notebook).

    Raises:
        InvalidInputError: unknown kind, or Pinecone without an index name or host.
        AuthenticationError: Pinecone without an API key (``PINECONE_API_KEY``).
        MissingDependencyError: the store's extra is not installed.
    """
    if kind == "faiss":
        from two_stage_rec.stores.faiss import FaissVectorStore

        return FaissVectorStore(dimension=dimension, metric="dotproduct")
    if kind == "memory":
        from two_stage_rec.stores.memory import InMemoryVectorStore

        return InMemoryVectorStore(dimension=dimension, metric="dotproduct")
    if kind == "pinecone":
        index = pinecone_index or os.environ.get("PINECONE_INDEX")
        host = pinecone_host or os.environ.get("PINECONE_HOST")
        if not index and not host:
            raise InvalidInputError(
                "--store pinecone needs an index: pass --pinecone-index NAME (or --pinecone-host HOST), "
                "or set PINECONE_INDEX / PINECONE_HOST; the API key comes from PINECONE_API_KEY"
            )
        from two_stage_rec.stores.pinecone import PineconeVectorStore

        return PineconeVectorStore(
            dimension=dimension, metric="dotproduct", index_name=index, host=host, create_if_missing=bool(index)
        )
    raise InvalidInputError(f"store must be one of {', '.join(STORE_CHOICES)}, got {kind!r}")


def run_demo(
    user_id: str,
    *,
    models_dir: Path = DEFAULT_MODELS,
    store: StoreChoice = "faiss",
    k: int = 5,
    candidates: int = 50,
    include_seen: bool = False,
    data_dir: Path | None = None,
    progress: bool = True,
    pinecone_index: str | None = None,
    pinecone_host: str | None = None,
) -> DemoResult:
    """Run the notebook for one user and return what the demo shows.

    Raises:
        UnknownUserError: the user is not in the training data.
        TwoStageRecError: data, models or store could not be loaded.
    """
    from two_stage_rec.artifacts import load_models
    from two_stage_rec.datasets import movielens_100k

    trained_now = ensure_models(models_dir, data_dir=data_dir, progress=progress)
    data = movielens_100k(data_dir, progress=progress)
    models = load_models(models_dir, backend="numpy")
    vector_store = build_store(
        store, dimension=models.item_embedder.dimension, pinecone_index=pinecone_index, pinecone_host=pinecone_host
    )
    try:
        recommender = Recommender(
            user_embedder=models.user_embedder,
            item_embedder=models.item_embedder,
            store=vector_store,
            reranker=models.reranker,
        )
        movies = list(data.movies)
        recommender.index_items([m.id_str for m in movies], metadata=[m.metadata() for m in movies])
        if store == "pinecone":
            _wait_for_pinecone(vector_store, len(movies))

        rated = data.ratings.for_user(user_id) if user_id.isdigit() else data.ratings.take(slice(0, 0))
        profile = sorted(
            (
                RatedMovie(str(item), data.movies[int(item)].title, float(rating))
                for item, rating in zip(rated.item_ids.tolist(), rated.ratings.tolist(), strict=True)
            ),
            key=lambda movie: (-movie.rating, movie.title),
        )
        exclude = set() if include_seen else {movie.movie_id for movie in profile}
        retrieval, reranked = (
            recommender.recommend(user_id, k=k, candidates=candidates, exclude=exclude, rerank=rerank)
            for rerank in (False, True)
        )
        blended = None
        if (models_dir / BLEND_FILE).is_file():
            blend = BlendReranker.load(models_dir / BLEND_FILE, rating_model=models.reranker)
            blender = Recommender(user_embedder=models.user_embedder, store=vector_store, reranker=blend)
            blended = blender.recommend(user_id, k=k, candidates=candidates, exclude=exclude)
        return DemoResult(
            user_id=user_id,
            profile=profile,
            retrieval=retrieval,
            reranked=reranked,
            blended=blended,
            candidates=candidates,
            store=repr(vector_store),
            models=models_dir,
            excluded_seen=not include_seen,
            trained_now=trained_now,
        )
    finally:
        _close(vector_store)


def _close(store: VectorStore) -> None:
    """Release a store's connections (Pinecone keeps an HTTP pool); local stores have nothing to close."""
    close = getattr(store, "close", None)
    if callable(close):
        close()


def _wait_for_pinecone(store: VectorStore, count: int) -> None:
    """Pinecone applies writes asynchronously; wait until the index holds the catalogue."""
    wait = getattr(store, "wait_until_count", None)
    if callable(wait):
        wait(count)


# ------------------------------------------------------------------ rendering


def _title(recommendation: Recommendation) -> str:
    return str(recommendation.metadata.get("title", recommendation.item_id))


def _genres(recommendation: Recommendation) -> str:
    genres = recommendation.metadata.get("genres", [])
    return ", ".join(genres) if isinstance(genres, list) else str(genres)


_EXPLANATION = (
    "Stage 1, retrieval: the user's vector (from the user tower) is compared with every movie's vector in the "
    "vector index by dot product; the {candidates} closest movies are the candidates. "
    "Stage 2, reranking: the notebook's scoring model predicts the user's rating (1-5 stars) for each candidate "
    "and the candidates are reordered by it."
)

_BLEND_EXPLANATION = (
    " The third column reorders the same candidates by a learned blend of the retrieval similarity, the predicted "
    "rating and a per-movie prior, fitted on held-out training ratings (two_stage_rec.rerankers.blend)."
)

_CAVEAT = (
    "Which column is better? Measured over all users (two-stage-rec evaluate; benchmarks/results/evaluation.json), "
    "reordering by predicted rating LOWERS top-k accuracy: a rating model predicts how much someone likes a film "
    "they watch, not which films they will watch, so it favours acclaimed films over what the user goes on to "
    "watch."
)
_CAVEAT_BLEND = (
    " The learned blend keeps the retrieval signal; it improves NDCG@10 over retrieval alone slightly but measurably."
)


def _columns(result: DemoResult) -> list[tuple[str, list[Recommendation], str, bool]]:
    """(title, recommendations, score label, show the reranker's score) per column."""
    columns = [
        ("Without reranking (retrieval only)", result.retrieval, "similarity", False),
        ("Reranked by predicted rating (notebook)", result.reranked, "predicted ★", True),
    ]
    if result.blended is not None:
        columns.append(("Reranked by learned blend (recommended)", result.blended, "blend score", True))
    return columns


def print_result(result: DemoResult, *, profile_rows: int = 10) -> None:
    """Print the demo as rich terminal tables."""
    from rich.columns import Columns
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(
        f"[bold]two_stage_rec demo[/] — user [bold cyan]{result.user_id}[/]  "
        f"(models: {result.models}{', trained just now' if result.trained_now else ''}; store: {result.store})"
    )
    explanation = _EXPLANATION.format(candidates=result.candidates)
    console.print(explanation + (_BLEND_EXPLANATION if result.blended is not None else ""), style="dim")

    def ranking(title: str, recommendations: list[Recommendation], score_label: str, rerank: bool) -> Table:
        table = Table(title=title, title_justify="left")
        table.add_column("#", justify="right")
        table.add_column("movie")
        table.add_column(score_label, justify="right")
        for rank, item in enumerate(recommendations, 1):
            score = item.score if rerank else item.retrieval_score
            table.add_row(str(rank), _title(item), f"{score:.2f}")
        return table

    console.print(Columns([ranking(*column) for column in _columns(result)]))
    profile = Table(
        title=f"What user {result.user_id} rated ({len(result.profile)} movies; best first)", title_justify="left"
    )
    profile.add_column("movie")
    profile.add_column("rating", justify="right")
    shown = result.profile[:profile_rows]
    for movie in shown:
        profile.add_row(movie.title, "★" * int(movie.rating) + f" {movie.rating:g}")
    if len(result.profile) > len(shown):
        profile.add_row(f"… and {len(result.profile) - len(shown)} more", "")
    console.print(profile)
    seen = "left out" if result.excluded_seen else "included (--include-seen)"
    console.print(f"Movies the user already rated are {seen}.", style="dim")
    console.print(_CAVEAT + (_CAVEAT_BLEND if result.blended is not None else ""), style="yellow")


def render_html(result: DemoResult, *, poster_url: PosterUrl | None = None) -> str:
    """The demo as a self-contained HTML page; posters only when ``poster_url`` is given."""

    def image(movie_id: str, title: str) -> str:
        if poster_url is None:
            return ""
        url = poster_url(movie_id, title)
        return f'<img src="{html.escape(url)}" alt="" loading="lazy">' if url else ""

    def ranking(title: str, recommendations: list[Recommendation], score_label: str, rerank: bool) -> str:
        rows = "".join(
            f"<tr><td>{rank}</td><td>{image(item.item_id, _title(item))}{html.escape(_title(item))}"
            f"<br><small>{html.escape(_genres(item))}</small></td>"
            f"<td>{(item.score if rerank else item.retrieval_score):.2f}</td></tr>"
            for rank, item in enumerate(recommendations, 1)
        )
        return (
            f"<section><h2>{html.escape(title)}</h2><table><tr><th>#</th><th>movie</th>"
            f"<th>{html.escape(score_label)}</th></tr>{rows}</table></section>"
        )

    profile_rows = "".join(
        f"<tr><td>{image(m.movie_id, m.title)}{html.escape(m.title)}</td>"
        f"<td>{'★' * int(m.rating)} {m.rating:g}</td></tr>"
        for m in result.profile
    )
    seen = "left out" if result.excluded_seen else "included"
    explanation = _EXPLANATION.format(candidates=result.candidates)
    explanation += _BLEND_EXPLANATION if result.blended is not None else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>two_stage_rec demo: user {html.escape(result.user_id)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
.side {{ display: flex; gap: 2em; flex-wrap: wrap; }}
table {{ border-collapse: collapse; }} th, td {{ border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: left; }}
img {{ height: 60px; margin-right: 8px; vertical-align: middle; }} .note {{ color: #555; }}
.caveat {{ background: #fff8e1; padding: 0.6em 1em; border-left: 4px solid #f9a825; }}
</style></head><body>
<h1>Recommendations for user {html.escape(result.user_id)}</h1>
<p class="note">{html.escape(explanation)}</p>
<div class="side">
{"".join(ranking(*column) for column in _columns(result))}
</div>
<p class="caveat">{html.escape(_CAVEAT + (_CAVEAT_BLEND if result.blended is not None else ""))}</p>
<h2>What user {html.escape(result.user_id)} rated ({len(result.profile)} movies, best first)</h2>
<table><tr><th>movie</th><th>rating</th></tr>{profile_rows}</table>
<p class="note">Movies the user already rated are {seen}. Store: {html.escape(result.store)}.
Models: {html.escape(str(result.models))}.</p>
</body></html>
"""


def _poster_template(template: str | None) -> PosterUrl | None:
    if not template:
        return None

    def poster(movie_id: str, title: str) -> str | None:
        from urllib.parse import quote

        return template.replace("{id}", quote(movie_id)).replace("{title}", quote(title))

    return poster


def register(app: typer.Typer) -> None:
    """Add the ``demo`` command to ``app``."""

    @app.command("demo")
    def demo(
        user: Annotated[str, typer.Option("--user", help="MovieLens user id (1-943).")] = "55",
        models: Annotated[
            Path, typer.Option("--models", help="Models directory; trained there on first use.", file_okay=False)
        ] = DEFAULT_MODELS,
        store: Annotated[
            str, typer.Option("--store", help="Vector index: faiss (default), memory, or pinecone.")
        ] = "faiss",
        k: Annotated[int, typer.Option("--k", min=1, help="Recommendations per column.")] = 5,
        candidates: Annotated[
            int, typer.Option("--candidates", min=1, help="Candidates retrieved before reranking.")
        ] = 50,
        include_seen: Annotated[
            bool, typer.Option("--include-seen", help="Also recommend movies the user already rated.")
        ] = False,
        html_out: Annotated[
            Path | None, typer.Option("--html", help="Also write the demo as an HTML page.", dir_okay=False)
        ] = None,
        poster_url: Annotated[
            str | None,
            typer.Option("--poster-url", help="Poster URL template for --html, with {id} and/or {title}."),
        ] = None,
        data_dir: Annotated[
            Path | None,
            typer.Option(
                "--data-dir", help="ml-100k folder (default: $TWO_STAGE_REC_DATA or the cache).", file_okay=False
            ),
        ] = None,
        pinecone_index: Annotated[
            str | None, typer.Option("--pinecone-index", help="Pinecone index name (or $PINECONE_INDEX).")
        ] = None,
        pinecone_host: Annotated[
            str | None, typer.Option("--pinecone-host", help="Pinecone index host (or $PINECONE_HOST).")
        ] = None,
    ) -> None:
        """Show a user's top movies without and with reranking, beside the movies they rated."""
        from rich.console import Console

        err = Console(stderr=True, highlight=False, soft_wrap=True)
        if store not in STORE_CHOICES:
            err.print(f"[bold red]error:[/] --store must be one of {', '.join(STORE_CHOICES)}, got {store!r}")
            raise typer.Exit(code=2)
        if candidates < k:
            err.print(f"[bold red]error:[/] --candidates ({candidates}) must be at least --k ({k})")
            raise typer.Exit(code=2)
        try:
            if not (models.is_dir() and not _missing(models)):
                err.print(
                    f"No models in {models}/ yet: training them now "
                    "(about a minute on a laptop, once; TensorFlow prints some log lines)."
                )
            result = run_demo(
                user,
                models_dir=models,
                store=store,  # checked against STORE_CHOICES above
                k=k,
                candidates=candidates,
                include_seen=include_seen,
                data_dir=data_dir,
                pinecone_index=pinecone_index,
                pinecone_host=pinecone_host,
            )
        except TwoStageRecError as exc:
            from rich.markup import escape

            hint = ""
            if type(exc).__name__ == "UnknownUserError":
                hint = " (MovieLens-100K users are 1..943; a user needs ratings in the training split)"
            err.print(f"[bold red]error:[/] {escape(str(exc))}{hint}")
            raise typer.Exit(code=1) from None
        print_result(result)
        if html_out is not None:
            html_out.parent.mkdir(parents=True, exist_ok=True)
            html_out.write_text(render_html(result, poster_url=_poster_template(poster_url)), encoding="utf-8")
            err.print(f"wrote {html_out}")


def _missing(models: Path) -> list[str]:
    from two_stage_rec.artifacts import missing_artifacts

    return missing_artifacts(models, "numpy")

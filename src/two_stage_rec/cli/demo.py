"""``two-stage-rec demo``: the notebook, end to end, for one user.

Trains the models on first use (about a minute; cached in ``--models``),
puts every movie's vector in a vector index, and shows a user's top movies
ranked by retrieval alone and after reranking, next to the movies they rated.
With ``--explain`` the recommended column also says why each movie is there:
the rated movies nearest to it in the item-embedding space.
"""

from __future__ import annotations

import html
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeAlias

import typer

from two_stage_rec.cli._choices import (
    CandidatesOption,
    DataDirOption,
    IncludeSeenOption,
    PineconeHostOption,
    PineconeIndexOption,
    StoreChoice,
    StoreOption,
    StoreSettingOption,
    store_settings,
)
from two_stage_rec.errors import TwoStageRecError
from two_stage_rec.protocols import Reranker
from two_stage_rec.recommender import Recommendation, Recommender

if TYPE_CHECKING:
    from two_stage_rec.assembly import AssembledRecommender

__all__ = ["DemoResult", "ensure_models", "register", "render_html", "run_demo"]

DEFAULT_MODELS = Path("models")
"""Where the demo caches its models (relative to the working directory, as ``make demo`` runs)."""

PosterUrl: TypeAlias = Callable[[str, str], str | None]
"""(movie id, title) -> poster image URL, or None for no image."""


@dataclass(frozen=True)
class RatedMovie:
    """One item the user interacted with in training: id, title and stars (1-5; None for implicit feedback)."""

    movie_id: str
    title: str
    rating: float | None


@dataclass(frozen=True)
class DemoResult:
    """Everything the demo shows for one user.

    Attributes:
        user_id: the user.
        profile: every movie the user rated, best rated first.
        retrieval: top k by retrieval score alone (stage 1 only).
        reranked: top k after the scoring model reordered the candidates.
        blended: top k after the learned blend reordered the same candidates
            (None when the bundle has no blend).
        staged: top k of the learned ranking stage, which ranks candidates of
            its own (the towers' and an item-item model's); None when the
            bundle has no ranking stage.
        recommended: the reranker the bundle recommends (``"none"``, ``"scoring"``, ``"blend"``).
        feedback: ``"explicit"`` or ``"implicit"``.
        candidates: candidates retrieved before reranking.
        store: description of the vector store used.
        models: the models directory used.
        excluded_seen: whether the user's rated movies were left out.
        trained_now: whether the models were trained during this run.
        because: with ``explain``, item id of each movie in the recommended
            column -> labels of the (up to two) movies from the user's history
            nearest to it (:attr:`~two_stage_rec.explain.Explanation.because`);
            empty without.
    """

    user_id: str
    profile: list[RatedMovie]
    retrieval: list[Recommendation]
    reranked: list[Recommendation]
    blended: list[Recommendation] | None
    staged: list[Recommendation] | None = field(default=None, kw_only=True)
    recommended: str
    feedback: str
    candidates: int
    store: str
    models: Path
    excluded_seen: bool
    trained_now: bool
    because: dict[str, tuple[str, ...]] = field(default_factory=dict, kw_only=True)


def ensure_models(models_dir: Path, *, data_dir: Path | None = None, progress: bool = True) -> bool:
    """Train the MovieLens-100K bundle into ``models_dir`` unless one is there (see
    :func:`~two_stage_rec.workflow.ensure_movielens_bundle`); True when trained now."""
    from two_stage_rec.workflow import ensure_movielens_bundle

    return ensure_movielens_bundle(models_dir, data_dir=data_dir, saved_models=_want_saved_models(), progress=progress)


def _want_saved_models() -> bool:
    """SavedModels are the notebook's format but take a while to export; tests may skip them."""
    return os.environ.get("TWO_STAGE_REC_DEMO_SAVED_MODELS", "1") != "0"


def _profile(served: AssembledRecommender, user_id: str, data_dir: Path | None) -> list[RatedMovie]:
    """What the user interacted with in training: with their stars for MovieLens, else as seen items."""
    seen = served.seen(user_id)
    stars: dict[str, float] = {}
    if served.bundle.manifest.dataset == "movielens-100k" and seen:
        from two_stage_rec.datasets import movielens_100k

        log = movielens_100k(data_dir, progress=False).interactions.for_user(user_id)
        if log.ratings is not None:
            stars = dict(zip(log.item_ids.tolist(), log.ratings.tolist(), strict=True))
    profile = [RatedMovie(item, served.label(item), stars.get(item)) for item in seen]
    return sorted(profile, key=lambda movie: (-(movie.rating or 0.0), movie.title))


def run_demo(
    user_id: str,
    *,
    models_dir: Path = DEFAULT_MODELS,
    store: str = "faiss",
    store_settings: dict[str, object] | None = None,
    k: int = 5,
    candidates: int = 50,
    include_seen: bool = False,
    data_dir: Path | None = None,
    progress: bool = True,
    explain: bool = False,
) -> DemoResult:
    """Run the notebook for one user on any bundle and return what the demo shows.

    A MovieLens bundle is trained into ``models_dir`` on first use. With
    ``explain``, the recommended column is asked for with ``explain=True`` and
    :attr:`DemoResult.because` names, per movie, the rated movies behind it.

    Raises:
        UnknownUserError: the user is not in the training data.
        TwoStageRecError: data, models or store could not be loaded.
    """
    from two_stage_rec.assembly import assemble

    trained_now = ensure_models(models_dir, data_dir=data_dir, progress=progress) if _is_default(models_dir) else False
    with assemble(models_dir, store=store, store_settings=store_settings, reranker="none", fallback=False) as served:
        bundle = served.bundle
        if not served.is_known(user_id):
            from two_stage_rec.errors import UnknownUserError

            raise UnknownUserError([user_id])
        profile = _profile(served, user_id, data_dir)
        ranked = {
            name: served.recommend(
                user_id, k=k, candidates=candidates, include_seen=include_seen, rerank=reranker is not None
            )
            if reranker is None
            else _rerank_with(served, reranker, user_id, k, candidates, include_seen)
            for name, reranker in bundle.rerankers.items()
        }
        staged = _ranking_stage(served, user_id, k, candidates, include_seen)
        because: dict[str, tuple[str, ...]] = {}
        if explain:
            recommended = bundle.manifest.recommended
            explained = _explained(served, user_id, k, candidates, include_seen)
            if recommended == "ranker":
                staged = explained
            else:
                ranked[recommended] = explained
            because = {
                rec.item_id: tuple(served.label(item) for item, _ in rec.explanation.because)
                for rec in explained
                if rec.explanation is not None and rec.explanation.because
            }
        return DemoResult(
            user_id=user_id,
            profile=profile,
            retrieval=ranked["none"],
            reranked=ranked.get("scoring", []),
            blended=ranked.get("blend"),
            staged=staged,
            recommended=bundle.manifest.recommended,
            feedback=bundle.manifest.feedback,
            candidates=candidates,
            store=repr(served.store),
            models=models_dir,
            excluded_seen=not include_seen,
            trained_now=trained_now,
            because=because,
        )


def _explained(
    served: AssembledRecommender, user_id: str, k: int, candidates: int, include_seen: bool
) -> list[Recommendation]:
    """The recommended pipeline's top k with explanations (the assembled recommender knows the user's history)."""
    from two_stage_rec.assembly import assemble

    # Not closed here: the store belongs to ``served``, which closes it.
    recommended = assemble(served.bundle, store=served.store, fallback=False, index=False)
    return recommended.recommend(user_id, k=k, candidates=candidates, include_seen=include_seen, explain=True)


def _ranking_stage(
    served: AssembledRecommender, user_id: str, k: int, candidates: int, include_seen: bool
) -> list[Recommendation] | None:
    """The ranking stage's top k, from the store already holding the catalogue (no second indexing)."""
    from two_stage_rec.assembly import assemble

    if served.bundle.ranking_stage is None:
        return None
    # Not closed here: the store belongs to ``served``, which closes it.
    staged = assemble(served.bundle, store=served.store, reranker="ranker", fallback=False, index=False)
    return staged.recommend(user_id, k=k, candidates=candidates, include_seen=include_seen)


def _is_default(models_dir: Path) -> bool:
    """Only the demo's own MovieLens models directory is trained on first use; any other must exist."""
    return models_dir == DEFAULT_MODELS or not models_dir.exists()


def _rerank_with(
    served: AssembledRecommender, reranker: Reranker, user_id: str, k: int, candidates: int, include_seen: bool
) -> list[Recommendation]:
    """The same candidates reordered by another reranker (the store already holds the catalogue)."""
    recommender = Recommender(user_embedder=served.recommender.user_embedder, store=served.store, reranker=reranker)
    exclude = () if include_seen else served.seen(user_id)
    return recommender.recommend(user_id, k=k, candidates=candidates, exclude=exclude)


# ------------------------------------------------------------------ rendering


def _stars(rating: float | None) -> str:
    return "seen" if rating is None else "★" * int(rating) + f" {rating:g}"


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
    "Which column is better? Measured over all users with `two-stage-rec evaluate`, "
    "reordering by predicted rating LOWERS top-k accuracy: a rating model predicts how much someone likes a film "
    "they watch, not which films they will watch, so it favours acclaimed films over what the user goes on to "
    "watch."
)
_CAVEAT_BLEND = (
    " The learned blend keeps the retrieval signal; it improves NDCG@10 over retrieval alone slightly but measurably."
)


_RECOMMENDED = " — recommended"


def _because(result: DemoResult, item_id: str) -> str:
    """``"because you rated X and Y"`` for a movie of the recommended column ("" when none)."""
    labels = result.because.get(item_id, ())
    if not labels:
        return ""
    verb = "rated" if result.feedback == "explicit" else "interacted with"
    return f"because you {verb} {' and '.join(labels)}"


def _recommended_column(result: DemoResult) -> tuple[str, list[Recommendation]] | None:
    """Title and items of the recommended column, when the result was explained."""
    if not result.because:
        return None
    for title, recommendations, _, _ in _columns(result):
        if title.endswith(_RECOMMENDED):
            return title.removesuffix(_RECOMMENDED), recommendations
    return None


def _columns(result: DemoResult) -> list[tuple[str, list[Recommendation], str, bool]]:
    """(title, recommendations, score label, show the reranker's score) per column."""

    def mark(title: str, name: str) -> str:
        return title + (_RECOMMENDED if result.recommended == name else "")

    scoring = (
        ("Reranked by predicted rating (notebook)", "predicted ★")
        if result.feedback == "explicit"
        else ("Reranked by predicted relevance", "relevance")
    )
    columns = [(mark("Without reranking (retrieval only)", "none"), result.retrieval, "similarity", False)]
    if result.reranked:
        columns.append((mark(scoring[0], "scoring"), result.reranked, scoring[1], True))
    if result.blended is not None:
        columns.append((mark("Reranked by learned blend", "blend"), result.blended, "blend score", True))
    if result.staged is not None:
        columns.append((mark("Learned ranking stage", "ranker"), result.staged, "ranker score", True))
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
    explained = _recommended_column(result)
    if explained is not None:
        why = Table(title=f"Why these? {explained[0]} (recommended)", title_justify="left")
        why.add_column("#", justify="right")
        why.add_column("movie")
        why.add_column("nearest in the item-embedding space to what the user rated")
        for rank, item in enumerate(explained[1], 1):
            why.add_row(str(rank), _title(item), _because(result, item.item_id) or "-")
        console.print(why)
    profile = Table(
        title=f"What user {result.user_id} rated ({len(result.profile)} movies; best first)", title_justify="left"
    )
    profile.add_column("movie")
    profile.add_column("rating", justify="right")
    shown = result.profile[:profile_rows]
    for movie in shown:
        profile.add_row(movie.title, _stars(movie.rating))
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

    def why(title: str, item: Recommendation) -> str:
        reason = _because(result, item.item_id) if title.endswith(_RECOMMENDED) else ""
        return f"<br><small><em>{html.escape(reason)}</em></small>" if reason else ""

    def ranking(title: str, recommendations: list[Recommendation], score_label: str, rerank: bool) -> str:
        rows = "".join(
            f"<tr><td>{rank}</td><td>{image(item.item_id, _title(item))}{html.escape(_title(item))}"
            f"<br><small>{html.escape(_genres(item))}</small>{why(title, item)}</td>"
            f"<td>{(item.score if rerank else item.retrieval_score):.2f}</td></tr>"
            for rank, item in enumerate(recommendations, 1)
        )
        return (
            f"<section><h2>{html.escape(title)}</h2><table><tr><th>#</th><th>movie</th>"
            f"<th>{html.escape(score_label)}</th></tr>{rows}</table></section>"
        )

    profile_rows = "".join(
        f"<tr><td>{image(m.movie_id, m.title)}{html.escape(m.title)}</td><td>{html.escape(_stars(m.rating))}</td></tr>"
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
        user: Annotated[str, typer.Option("--user", help="User id (MovieLens-100K: 1-943).")] = "55",
        models: Annotated[
            Path,
            typer.Option(
                "--models", help="Any bundle; a MovieLens-100K one is trained there on first use.", file_okay=False
            ),
        ] = DEFAULT_MODELS,
        store: StoreOption = StoreChoice.faiss,  # type: ignore[attr-defined]
        store_setting: StoreSettingOption = None,
        pinecone_index: PineconeIndexOption = None,
        pinecone_host: PineconeHostOption = None,
        k: Annotated[int, typer.Option("--k", min=1, help="Recommendations per column.")] = 5,
        candidates: CandidatesOption = 50,
        include_seen: IncludeSeenOption = False,
        html_out: Annotated[
            Path | None, typer.Option("--html", help="Also write the demo as an HTML page.", dir_okay=False)
        ] = None,
        poster_url: Annotated[
            str | None,
            typer.Option("--poster-url", help="Poster URL template for --html, with {id} and/or {title}."),
        ] = None,
        data_dir: DataDirOption = None,
        explain: Annotated[
            bool,
            typer.Option(
                "--explain",
                help="Say why each movie of the recommended column is there: the rated movies nearest to it "
                "in the item-embedding space.",
            ),
        ] = False,
    ) -> None:
        """Show a user's top items without and with each reranker, beside what they interacted with."""
        from rich.console import Console

        from two_stage_rec.bundle import is_bundle

        err = Console(stderr=True, highlight=False, soft_wrap=True)
        if candidates < k:
            err.print(f"[bold red]error:[/] --candidates ({candidates}) must be at least --k ({k})")
            raise typer.Exit(code=2)
        try:
            if not is_bundle(models):
                err.print(
                    f"No bundle in {models}/ yet: training one on MovieLens-100K now "
                    "(a minute or two on a laptop, once; TensorFlow prints some log lines)."
                )
            result = run_demo(
                user,
                models_dir=models,
                store=store.value,
                store_settings=store_settings(
                    store_setting, pinecone_index=pinecone_index, pinecone_host=pinecone_host
                ),
                k=k,
                candidates=candidates,
                include_seen=include_seen,
                data_dir=data_dir,
                explain=explain,
            )
        except TwoStageRecError as exc:
            from rich.markup import escape

            hint = ""
            if type(exc).__name__ == "UnknownUserError":
                hint = " (the user needs events in the bundle's training split; MovieLens-100K users are 1..943)"
            err.print(f"[bold red]error:[/] {escape(str(exc))}{hint}")
            raise typer.Exit(code=1) from None
        print_result(result)
        if html_out is not None:
            html_out.parent.mkdir(parents=True, exist_ok=True)
            html_out.write_text(render_html(result, poster_url=_poster_template(poster_url)), encoding="utf-8")
            err.print(f"wrote {html_out}")

"""``two-stage-rec evaluate``: measure retrieval only vs retrieve-then-rerank on a MovieLens protocol.

Models must never have seen the protocol's test ratings, so each models
directory records the protocol it was trained for (``protocol.json``, written
by :func:`train_for_protocol`). Evaluating models trained for another protocol
is refused: a random 80/20 model has seen about 3/4 of the stratified test set.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from two_stage_rec.errors import InvalidInputError, ModelError, TwoStageRecError
from two_stage_rec.evaluation.protocols import PROTOCOLS, protocol_spec, split_for_protocol
from two_stage_rec.rerankers.blend import BLEND_FILE

__all__ = [
    "PROTOCOL_FILE",
    "evaluate_protocol",
    "models_protocol",
    "register",
    "train_for_protocol",
]

PROTOCOL_FILE = "protocol.json"
"""Marker in a models directory: ``{"protocol": "stratified", "train_ratings": 74992}``."""


def models_protocol(models_dir: Path) -> str | None:
    """The protocol a models directory was trained for, or None when it does not say."""
    marker = models_dir / PROTOCOL_FILE
    if not marker.is_file():
        return None
    try:
        return str(json.loads(marker.read_text(encoding="utf-8"))["protocol"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{marker} is not a protocol marker: {exc}") from exc


def write_protocol_marker(models_dir: Path, protocol: str, train_ratings: int) -> None:
    """Record which protocol's training split the models in ``models_dir`` were trained on."""
    (models_dir / PROTOCOL_FILE).write_text(
        json.dumps({"protocol": protocol, "train_ratings": train_ratings}, indent=2) + "\n", encoding="utf-8"
    )


def train_for_protocol(
    protocol: str,
    models_dir: Path,
    *,
    data_dir: Path | None = None,
    config: Any = None,
    blend: bool = True,
    progress: bool = True,
    saved_models: bool = False,
) -> Path:
    """Train models on ``protocol``'s training split and save them (with the marker) to ``models_dir``.

    Args:
        protocol: one of :data:`~two_stage_rec.evaluation.protocols.PROTOCOLS`.
        models_dir: output directory.
        data_dir: ml-100k folder (default: ``$TWO_STAGE_REC_DATA``, the cache or a download).
        config: a :class:`~two_stage_rec.training.TrainingConfig`; None uses
            :data:`~two_stage_rec.training.blend.PIPELINE_CONFIG`.
        blend: also fit a blend reranker (:func:`~two_stage_rec.training.blend.train_with_blend`,
            about twice the training time) so that it is evaluated too.
        progress: per-epoch progress bars.
        saved_models: also export the TF SavedModels (not needed to evaluate).

    Returns:
        ``models_dir``.
    """
    from two_stage_rec.cli.demo import _require_tensorflow
    from two_stage_rec.datasets import movielens_100k

    _require_tensorflow()
    from two_stage_rec.training import train_models
    from two_stage_rec.training.blend import PIPELINE_CONFIG, train_with_blend

    config = PIPELINE_CONFIG if config is None else config

    train, test = split_for_protocol(protocol, None if data_dir is None else str(data_dir), progress=progress)
    items = movielens_100k(data_dir, progress=progress).movies.ids_str()
    if blend:
        train_with_blend(train, test=test, items=items, config=config, progress=progress).save(
            models_dir, saved_models=saved_models
        )
    else:
        train_models(train, test=test, items=items, config=config, progress=progress).save(
            models_dir, saved_models=saved_models
        )
    write_protocol_marker(models_dir, protocol, len(train))
    return models_dir


@dataclass(frozen=True)
class ProtocolRun:
    """An evaluation and the circumstances needed to reproduce it."""

    protocol: str
    models_dir: Path
    result: Any  # EvaluationResult
    notes: list[str]
    seconds: float


def evaluate_protocol(
    protocol: str,
    models_dir: Path,
    *,
    k: int = 10,
    candidates: int = 50,
    store: str = "faiss",
    data_dir: Path | None = None,
    n_resamples: int = 10_000,
    seed: int = 0,
    train_if_missing: bool = True,
    progress: bool = True,
) -> ProtocolRun:
    """Evaluate the models in ``models_dir`` on ``protocol`` (training them first if absent).

    Rankers: ``retrieval`` (vector store only), ``reranked`` (the scoring
    model, as in the notebook), ``blend`` (when ``blend_reranker.npz`` is
    present) and the ``most_popular`` baseline.

    Raises:
        ModelError: the models were trained for another protocol (their
            training data overlaps this protocol's test set).
    """
    from two_stage_rec.artifacts import load_models, missing_artifacts
    from two_stage_rec.cli.demo import build_store
    from two_stage_rec.datasets import movielens_100k
    from two_stage_rec.evaluation import evaluate
    from two_stage_rec.recommender import Recommender
    from two_stage_rec.rerankers.blend import BlendReranker

    spec = protocol_spec(protocol)
    notes: list[str] = [f"Protocol {spec.name}: {spec.description}. Reference: {spec.reference}."]
    if missing_artifacts(models_dir, "numpy") if models_dir.is_dir() else True:
        if not train_if_missing:
            raise ModelError(f"no models in {models_dir}")
        train_for_protocol(protocol, models_dir, data_dir=data_dir, progress=progress)
        notes.append(f"Models were trained now on the {protocol} training split into {models_dir}.")
    trained_for = models_protocol(models_dir)
    train, test = split_for_protocol(protocol, None if data_dir is None else str(data_dir), progress=progress)
    if trained_for is not None and trained_for != protocol:
        raise ModelError(
            f"the models in {models_dir} were trained for the {trained_for!r} protocol; their training ratings "
            f"overlap the {protocol!r} test set, so the numbers would be inflated. Evaluate them with "
            f"--protocol {trained_for}, or pass --models with a new directory to train for {protocol!r}."
        )
    models = load_models(models_dir, backend="numpy")
    if trained_for is None:
        trained_on = models.report.data.get("train_ratings") if models.report is not None else None
        if trained_on is not None and int(trained_on) != len(train):
            raise ModelError(
                f"the models in {models_dir} were trained on {int(trained_on):,} ratings, but the {protocol!r} "
                f"protocol trains on {len(train):,}: they were trained for another split, which overlaps this "
                f"test set. Pass --models with a new directory to train for {protocol!r}."
            )
        notes.append(
            f"WARNING: {models_dir} does not record which split its models were trained on; the numbers are only "
            f"valid if that was the {protocol} training split ({len(train):,} ratings)."
        )
    vector_store = build_store(store, dimension=models.item_embedder.dimension)  # type: ignore[arg-type]
    recommender = Recommender(
        user_embedder=models.user_embedder,
        item_embedder=models.item_embedder,
        store=vector_store,
        reranker=models.reranker,
    )
    recommender.index_items(movielens_100k(data_dir, progress=progress).movies.ids_str())
    rerankers: dict[str, Any] = {"reranked": models.reranker}
    if (models_dir / BLEND_FILE).is_file():
        rerankers["blend"] = BlendReranker.load(models_dir / BLEND_FILE, rating_model=models.reranker)
    started = time.perf_counter()
    result = evaluate(
        recommender,
        train,
        test,
        k=k,
        cutoffs=sorted({1, 5, k, 20}),
        candidates=max(candidates, 20, k),
        rerankers=rerankers,
        measure_rating_errors=True,
        n_resamples=n_resamples,
        seed=seed,
    )
    return ProtocolRun(protocol, models_dir, result, notes, time.perf_counter() - started)


def _default_models(protocol: str) -> Path:
    return Path("models") / f"eval-{protocol}"


def register(app: typer.Typer) -> None:
    """Add the ``evaluate`` command to ``app``."""

    @app.command("evaluate")
    def evaluate_command(
        protocol: Annotated[
            str, typer.Option("--protocol", help=f"Evaluation protocol: {', '.join(PROTOCOLS)}.")
        ] = "stratified",
        models: Annotated[
            Path | None,
            typer.Option(
                "--models",
                help="Models trained on this protocol's training split; trained there if absent. "
                "Default: models/eval-<protocol>.",
                file_okay=False,
            ),
        ] = None,
        k: Annotated[int, typer.Option("--k", min=1, help="Cut-off of the headline metrics.")] = 10,
        candidates: Annotated[int, typer.Option("--candidates", min=1, help="Candidates per user.")] = 50,
        store: Annotated[str, typer.Option("--store", help="faiss (default) or memory.")] = "faiss",
        out: Annotated[
            Path, typer.Option("--out", help="Directory for evaluation-<protocol>.json and .html.", file_okay=False)
        ] = Path("reports"),
        html: Annotated[bool, typer.Option("--html/--no-html", help="Write the HTML report with plots.")] = True,
        data_dir: Annotated[
            Path | None, typer.Option("--data-dir", help="ml-100k folder (default: $TWO_STAGE_REC_DATA).")
        ] = None,
        resamples: Annotated[int, typer.Option("--resamples", min=100, help="Bootstrap resamples.")] = 10_000,
        seed: Annotated[int, typer.Option("--seed", help="Bootstrap seed.")] = 0,
    ) -> None:
        """Measure every metric for retrieval only, reranked, and most-popular; say whether reranking helps."""
        from rich.console import Console
        from rich.markup import escape

        from two_stage_rec.cli._evaluation_report import html_report, rich_tables

        console = Console()
        err = Console(stderr=True, highlight=False, soft_wrap=True)
        if store not in ("faiss", "memory"):
            err.print(f"[bold red]error:[/] --store must be faiss or memory, got {store!r}")
            raise typer.Exit(code=2)
        models_dir = models if models is not None else _default_models(protocol)
        try:
            protocol_spec(protocol)
            run = evaluate_protocol(
                protocol,
                models_dir,
                k=k,
                candidates=candidates,
                store=store,
                data_dir=data_dir,
                n_resamples=resamples,
                seed=seed,
            )
        except (TwoStageRecError, InvalidInputError) as exc:
            err.print(f"[bold red]error:[/] {escape(str(exc))}")
            raise typer.Exit(code=1) from None
        result = run.result
        for note in run.notes:
            console.print(escape(note), style="yellow" if note.startswith("WARNING") else "dim")
        for table in rich_tables(result, title=f"{protocol}: top-{k} quality over {result.n_users} users"):
            console.print(table)
        for line in result.summary():
            console.print(escape(line))
        if result.rating_errors:
            errors = result.rating_errors
            console.print(f"Scoring model as a rating predictor: RMSE {errors['rmse']:.4f}, MAE {errors['mae']:.4f}")
        out.mkdir(parents=True, exist_ok=True)
        payload = {"protocol": protocol, "models": str(models_dir), "notes": run.notes, **result.to_dict()}
        json_path = out / f"evaluation-{protocol}.json"
        json_path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        console.print(f"wrote {json_path}")
        if html:
            try:
                page = html_report(result, title=f"two_stage_rec evaluation: {protocol}", notes=run.notes)
            except TwoStageRecError as exc:
                err.print(f"[bold red]error:[/] {escape(str(exc))}")
                raise typer.Exit(code=1) from None
            html_path = out / f"evaluation-{protocol}.html"
            html_path.write_text(page, encoding="utf-8")
            console.print(f"wrote {html_path}")

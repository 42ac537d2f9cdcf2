"""``two-stage-rec evaluate``: measure retrieval only, each reranker and most-popular on held-out data.

A bundle records the split it was trained on; evaluation recreates that split
from the same data and checks that its training part is exactly what the
models saw (see :func:`two_stage_rec.workflow.evaluate_bundle`). For
MovieLens-100K, ``--protocol`` names the split and a bundle for it is trained
on first use.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from two_stage_rec.cli._choices import DataDirOption, StoreChoice, StoreOption
from two_stage_rec.cli._own_data import (
    DropUnknownOption,
    InteractionsOption,
    ItemColumnOption,
    ItemIdColumnOption,
    ItemsOption,
    ListColumnsOption,
    RatingColumnOption,
    TimestampColumnOption,
    UserColumnOption,
    WeightColumnOption,
    own_data_from_options,
)
from two_stage_rec.errors import InvalidInputError, ModelError, TwoStageRecError

if TYPE_CHECKING:
    from two_stage_rec.evaluation.policy_curve import PolicyCurve
    from two_stage_rec.evaluation.result import EvaluationResult

__all__ = ["ProtocolRun", "evaluate_protocol", "parse_trade_offs", "register"]


@dataclass(frozen=True)
class ProtocolRun:
    """An evaluation and the circumstances needed to reproduce it."""

    protocol: str
    models_dir: Path
    result: EvaluationResult
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
    implicit: bool = False,
    n_resamples: int = 10_000,
    seed: int = 0,
    train_if_missing: bool = True,
    progress: bool = True,
    diversity_curve: Sequence[float] = (),
    diversity_field: str | None = "genres",
) -> ProtocolRun:
    """Evaluate the MovieLens bundle in ``models_dir`` on ``protocol`` (training it first if absent).

    Args:
        diversity_curve: MMR trade-offs λ; when given, the result's
            ``diversity_curve`` holds NDCG@k against intra-list diversity,
            distinct ``diversity_field`` values, novelty and coverage per λ
            (λ = 0 always included) for the bundle's recommended pipeline.
        diversity_field: the metadata field the curve counts distinct values of.

    Raises:
        ModelError: the bundle was trained for another split (its training
            data overlaps this protocol's test set).
        InvalidInputError: a λ outside [0, 1], or ``diversity_field`` on no item.
    """
    from two_stage_rec.bundle import is_bundle, read_manifest
    from two_stage_rec.evaluation.movielens_protocols import MOVIELENS_PROTOCOLS
    from two_stage_rec.workflow import evaluate_bundle, train_movielens_bundle

    if protocol not in MOVIELENS_PROTOCOLS:
        raise InvalidInputError(f"unknown protocol {protocol!r}; choose one of {', '.join(MOVIELENS_PROTOCOLS)}")
    notes: list[str] = []
    if not is_bundle(models_dir):
        if not train_if_missing:
            raise ModelError(f"no bundle in {models_dir}")
        train_movielens_bundle(
            models_dir,
            protocol=protocol,
            implicit=implicit,
            data_dir=data_dir,
            measure=False,
            progress=progress,
        )
        notes.append(f"A bundle was trained now on the {protocol} training split into {models_dir}.")
    manifest = read_manifest(models_dir)
    recorded = (manifest.split or {}).get("protocol")
    if recorded != protocol:
        raise ModelError(
            f"the bundle in {models_dir} was trained for the {recorded or 'unrecorded'!s} split, whose training "
            f"events overlap the {protocol!r} test set, so the numbers would be inflated. Pass --models with a new "
            f"directory to train for {protocol!r}."
        )
    notes.append(f"Protocol {protocol} ({manifest.feedback} feedback), recommended reranker: {manifest.recommended}.")
    started = time.perf_counter()
    result = evaluate_bundle(
        models_dir,
        store=store,
        data_dir=data_dir,
        k=k,
        candidates=candidates,
        n_resamples=n_resamples,
        seed=seed,
        diversity_field=diversity_field,
    )
    if diversity_curve:
        curve = _mmr_curve(
            models_dir,
            protocol,
            trade_offs=diversity_curve,
            field=diversity_field,
            store=store,
            data_dir=data_dir,
            k=k,
            candidates=max(candidates, k),
            n_resamples=n_resamples,
            seed=seed,
        )
        result = dataclasses.replace(result, diversity_curve=curve)
        notes.append(f"MMR curve measured for the recommended pipeline ({manifest.recommended}).")
    return ProtocolRun(protocol, models_dir, result, notes, time.perf_counter() - started)


def _mmr_curve(
    models_dir: Path,
    protocol: str,
    *,
    trade_offs: Sequence[float],
    field: str | None,
    store: str,
    data_dir: Path | None,
    k: int,
    candidates: int,
    n_resamples: int,
    seed: int,
) -> PolicyCurve:
    """The MMR curve of the bundle's recommended pipeline on the protocol's split."""
    from two_stage_rec.assembly import assemble
    from two_stage_rec.bundle import read_bundle
    from two_stage_rec.evaluation.movielens_protocols import split_for_protocol
    from two_stage_rec.evaluation.policy_curve import mmr_curve

    bundle = read_bundle(models_dir)
    train, test = split_for_protocol(protocol, None if data_dir is None else str(data_dir), progress=False)
    if bundle.manifest.feedback == "implicit":
        train, test = train.without_ratings(), test.without_ratings()
    if train.fingerprint() != bundle.manifest.train_fingerprint:  # evaluate_bundle checked the same split
        raise ModelError(f"the bundle in {models_dir} was not trained on the {protocol!r} training split")
    with assemble(bundle, store=store, fallback=False) as served:
        return mmr_curve(
            served.recommender,
            train,
            test,
            trade_offs=trade_offs,
            field=field,
            k=k,
            candidates=candidates,
            n_resamples=n_resamples,
            seed=seed,
        )


def parse_trade_offs(text: str) -> tuple[float, ...]:
    """``"0,0.1,0.3"`` -> ``(0.0, 0.1, 0.3)``: MMR trade-offs from the command line.

    Raises:
        InvalidInputError: an entry is not a number in [0, 1].
    """
    values = []
    for part in text.split(","):
        try:
            value = float(part.strip())
        except ValueError:
            raise InvalidInputError(
                f"--diversity-curve takes numbers in [0, 1] separated by commas, got {part!r}"
            ) from None
        if not 0.0 <= value <= 1.0:
            raise InvalidInputError(f"an MMR trade-off must be in [0, 1], got {value:g}")
        values.append(value)
    return tuple(values)


def _default_models(protocol: str, implicit: bool) -> Path:
    return Path("models") / f"eval-{protocol}{'-implicit' if implicit else ''}"


def register(app: typer.Typer) -> None:
    """Add the ``evaluate`` command to ``app``."""

    @app.command("evaluate")
    def evaluate_command(
        protocol: Annotated[
            str,
            typer.Option("--protocol", help="MovieLens-100K split: random, stratified, temporal or u1."),
        ] = "stratified",
        models: Annotated[
            Path | None,
            typer.Option(
                "--models",
                help="The bundle to evaluate. MovieLens: trained for --protocol there if absent "
                "(default models/eval-<protocol>). Own data: required.",
                file_okay=False,
            ),
        ] = None,
        interactions: InteractionsOption = None,
        items: ItemsOption = None,
        test_file: Annotated[
            Path | None,
            typer.Option(
                "--test",
                help="Own data: a file of events the bundle never saw (same columns as --interactions), "
                "instead of recreating the bundle's held-out split.",
                dir_okay=False,
            ),
        ] = None,
        user_column: UserColumnOption = "user_id",
        item_column: ItemColumnOption = "item_id",
        rating_column: RatingColumnOption = None,
        timestamp_column: TimestampColumnOption = None,
        weight_column: WeightColumnOption = None,
        item_id_column: ItemIdColumnOption = "item_id",
        list_column: ListColumnsOption = None,
        drop_unknown_items: DropUnknownOption = False,
        implicit: Annotated[
            bool, typer.Option("--implicit", help="MovieLens-100K: evaluate a bundle trained without ratings.")
        ] = False,
        k: Annotated[int, typer.Option("--k", min=1, help="Cut-off of the headline metrics.")] = 10,
        candidates: Annotated[int, typer.Option("--candidates", min=1, help="Candidates per user.")] = 50,
        store: StoreOption = StoreChoice.faiss,  # type: ignore[attr-defined]
        out: Annotated[
            Path, typer.Option("--out", help="Directory for evaluation-<name>.json and .html.", file_okay=False)
        ] = Path("reports"),
        html: Annotated[bool, typer.Option("--html/--no-html", help="Write the HTML report with plots.")] = True,
        data_dir: DataDirOption = None,
        resamples: Annotated[int, typer.Option("--resamples", min=100, help="Bootstrap resamples.")] = 10_000,
        seed: Annotated[int, typer.Option("--seed", help="Bootstrap seed.")] = 0,
        diversity_curve: Annotated[
            str | None,
            typer.Option(
                "--diversity-curve",
                help="MovieLens: MMR trade-offs λ in [0, 1], e.g. 0,0.1,0.3,0.5,0.9. Adds, for the recommended "
                "pipeline, NDCG@k against intra-list diversity, distinct --diversity-field values, novelty and "
                "coverage per λ (with the NDCG difference from λ=0) to the table, the JSON and the HTML plots.",
            ),
        ] = None,
        diversity_field: Annotated[
            str,
            typer.Option(
                "--diversity-field",
                help="Metadata field whose distinct values in each top k are reported (and the MMR curve counts).",
            ),
        ] = "genres",
    ) -> None:
        """Measure retrieval only, every reranker of the bundle and most-popular; say whether reranking helps."""
        from rich.console import Console
        from rich.markup import escape

        from two_stage_rec.cli._evaluation_report import html_report, rich_curve_table, rich_tables

        console = Console()
        err = Console(stderr=True, highlight=False, soft_wrap=True)
        started = time.perf_counter()
        try:
            trade_offs = parse_trade_offs(diversity_curve) if diversity_curve is not None else ()
            if interactions is None and items is None and test_file is None:
                name = protocol + ("-implicit" if implicit else "")
                models_dir = models if models is not None else _default_models(protocol, implicit)
                run = evaluate_protocol(
                    protocol,
                    models_dir,
                    k=k,
                    candidates=candidates,
                    store=store.value,
                    data_dir=data_dir,
                    implicit=implicit,
                    n_resamples=resamples,
                    seed=seed,
                    diversity_curve=trade_offs,
                    diversity_field=diversity_field,
                )
                result, notes = run.result, run.notes
            else:
                if models is None:
                    raise InvalidInputError("evaluating your own data needs --models DIR (the bundle)")
                if trade_offs:
                    raise InvalidInputError(
                        "--diversity-curve is measured on the MovieLens protocols; for your own data call "
                        "two_stage_rec.evaluation.mmr_curve with the assembled recommender and your split"
                    )
                if items is None or (interactions is None and test_file is None):
                    raise InvalidInputError("own data needs --items FILE and --interactions FILE (or --test FILE)")
                from two_stage_rec.bundle import read_manifest
                from two_stage_rec.workflow import evaluate_bundle

                own = own_data_from_options(
                    interactions if interactions is not None else test_file,
                    items,
                    user_column,
                    item_column,
                    rating_column,
                    timestamp_column,
                    weight_column,
                    item_id_column,
                    list_column,
                    drop_unknown_items,
                )
                assert own is not None  # both files given: checked above
                log, _ = own.read()
                manifest = read_manifest(models)
                name = models.name
                result = evaluate_bundle(
                    models,
                    None if test_file is not None else log,
                    test=log if test_file is not None else None,
                    store=store.value,
                    k=k,
                    candidates=candidates,
                    n_resamples=resamples,
                    seed=seed,
                )
                held_out = f"events of {test_file.name}" if test_file is not None else f"split {manifest.split}"
                notes = [
                    f"Bundle {models} ({manifest.feedback} feedback, recommended reranker {manifest.recommended}) "
                    f"on the held-out {held_out}."
                ]
        except TwoStageRecError as exc:
            err.print(f"[bold red]error:[/] {escape(str(exc))}")
            raise typer.Exit(code=1) from None
        for note in notes:
            console.print(escape(note), style="dim")
        for table in rich_tables(result, title=f"{name}: top-{k} quality over {result.n_users} users"):
            console.print(table)
        for line in result.summary():
            console.print(escape(line))
        if result.diversity_curve is not None:
            level = result.settings.get("confidence", 0.95)
            console.print(rich_curve_table(result.diversity_curve, confidence=f"{level:.0%}"))
        if result.rating_errors:
            errors = result.rating_errors
            console.print(f"Scoring model as a rating predictor: RMSE {errors['rmse']:.4f}, MAE {errors['mae']:.4f}")
        out.mkdir(parents=True, exist_ok=True)
        payload = {
            "name": name,
            "models": str(models),
            "notes": notes,
            "seconds": round(time.perf_counter() - started, 3),
            **result.to_dict(),
        }
        json_path = out / f"evaluation-{name}.json"
        json_path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        console.print(f"wrote {json_path}")
        if html:
            try:
                page = html_report(result, title=f"two_stage_rec evaluation: {name}", notes=notes)
            except TwoStageRecError as exc:
                err.print(f"[bold red]error:[/] {escape(str(exc))}")
                raise typer.Exit(code=1) from None
            html_path = out / f"evaluation-{name}.html"
            html_path.write_text(page, encoding="utf-8")
            console.print(f"wrote {html_path}")

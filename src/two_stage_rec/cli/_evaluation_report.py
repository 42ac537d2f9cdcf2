"""Render an :class:`~two_stage_rec.evaluation.EvaluationResult` for people: rich tables and an HTML report.

``rich`` comes with the CLI (typer depends on it); matplotlib is the ``plots``
extra and is imported only inside :func:`html_report`.
"""

from __future__ import annotations

import html
import io
from typing import TYPE_CHECKING, Any

from two_stage_rec._optional import require
from two_stage_rec.evaluation.result import METRIC_NAMES, EvaluationResult

if TYPE_CHECKING:
    from rich.table import Table

    from two_stage_rec.evaluation.policy_curve import PolicyCurve

__all__ = ["html_report", "rich_curve_table", "rich_tables"]

_SHORT = {
    "precision": "P",
    "recall": "R",
    "ndcg": "NDCG",
    "map": "MAP",
    "hit_rate": "HR",
    "coverage": "Cov",
    "ild": "ILD",
    "novelty": "Nov",
}
_LABELS = {
    "precision": "Precision",
    "recall": "Recall",
    "ndcg": "NDCG",
    "map": "MAP",
    "hit_rate": "HitRate",
    "coverage": "Coverage",
    "ild": "intra-list diversity",
    "novelty": "novelty",
}


def _short(metric: str) -> str:
    """Column label: ``"distinct_genres"`` -> ``"genres"`` (distinct values in the top k)."""
    return _SHORT.get(metric, metric.removeprefix("distinct_"))


def _label(metric: str) -> str:
    return _LABELS.get(metric, f"distinct {metric.removeprefix('distinct_')}")


def rich_tables(result: EvaluationResult, *, title: str = "") -> list[Table]:
    """Two rich tables: every ranker at k, and each paired comparison with retrieval only."""
    from rich.table import Table

    k = result.k
    metrics = Table(title=title or f"Top-{k} quality over {result.n_users} users", title_justify="left")
    metrics.add_column("ranker")
    beyond = result.beyond_accuracy()
    for name in (*METRIC_NAMES, *beyond):
        # beyond-accuracy columns are dim: more diverse is not simply better
        metrics.add_column(f"{_short(name)}@{k}", justify="right", style="dim" if name in beyond else None)
    best = {name: max(ranker.metrics[f"{name}@{k}"] for ranker in result.rankers.values()) for name in METRIC_NAMES}
    for ranker in result.rankers.values():
        cells = []
        for name in (*METRIC_NAMES, *beyond):
            value = ranker.metrics[f"{name}@{k}"]
            text = f"{value:.4f}" if name in METRIC_NAMES or name in ("coverage", "ild") else f"{value:.2f}"
            cells.append(f"[bold]{text}[/]" if name in best and value == best[name] else text)
        metrics.add_row(ranker.name, *cells)

    comparisons = Table(
        title=f"Per-user difference from retrieval only at k={k} ({_confidence(result)} bootstrap CI)",
        title_justify="left",
    )
    for column in ("ranker", "metric", "retrieval", "ranker's", "Δ mean", "CI", "users ↑/↓", "verdict"):
        comparisons.add_column(column, justify="left" if column in ("ranker", "metric", "verdict") else "right")
    for label, per_metric in result.comparisons.items():
        name = label.split(" vs ")[0]
        for metric in METRIC_NAMES:
            c = per_metric[metric]
            verdict = c.verdict()
            colour = {"better": "green", "worse": "red"}.get(verdict, "yellow")
            comparisons.add_row(
                name if metric == METRIC_NAMES[0] else "",
                f"{_SHORT[metric]}@{k}",
                f"{result.metric('retrieval', metric):.4f}",
                f"{result.metric(name, metric):.4f}",
                f"{c.mean_difference:+.4f}",
                f"[{c.ci_low:+.4f}, {c.ci_high:+.4f}]",
                f"{c.wins}/{c.losses}",
                f"[{colour}]{verdict}[/]",
                end_section=metric == METRIC_NAMES[-1],
            )
    return [metrics, comparisons]


def _curve_columns(curve: PolicyCurve) -> list[str]:
    """The curve's diversity metrics in display order (those its rows have)."""
    first = next(iter(curve.rows.values()))
    distinct = [f"distinct_{curve.field}"] if curve.field else []
    names = ["ild", *distinct, "novelty", "coverage"]
    return [name for name in names if f"{name}@{curve.k}" in first.metrics]


def rich_curve_table(curve: PolicyCurve, *, confidence: str = "95%") -> Table:
    """The MMR curve: per λ, NDCG@k and its paired difference from λ = 0, and each diversity metric."""
    from rich.table import Table

    k = curve.k
    table = Table(
        title=f"Relevance against variety over MMR's trade-off λ (top {k} of {curve.candidates} ranked candidates, "
        f"{curve.n_users} users; Δ vs λ=0 with {confidence} bootstrap CI)",
        title_justify="left",
    )
    columns = _curve_columns(curve)
    for column in ("λ", f"NDCG@{k}", "Δ NDCG", "CI", *(f"{_short(c)}@{k}" for c in columns)):
        table.add_column(column, justify="right")
    for row in curve.rows.values():
        versus = row.versus_first
        table.add_row(
            "-" if row.trade_off is None else f"{row.trade_off:g}",
            f"{row.metrics[f'ndcg@{k}']:.4f}",
            "" if versus is None else f"{versus.mean_difference:+.4f}",
            "" if versus is None else f"[{versus.ci_low:+.4f}, {versus.ci_high:+.4f}]",
            *(f"{row.metrics[f'{c}@{k}']:.4f}" for c in columns),
        )
    return table


def _confidence(result: EvaluationResult) -> str:
    level = result.settings.get("confidence", 0.95)
    return f"{float(level) if isinstance(level, int | float) else 0.95:.0%}"


def _svg(figure: Any) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # drop the XML prolog: the SVG is inlined in HTML


def _curve_figure(result: EvaluationResult) -> str:
    matplotlib = require("matplotlib", extra="plots")
    matplotlib.use("Agg", force=True)  # no display needed; safe in CI and over SSH
    pyplot = require("matplotlib.pyplot", extra="plots")
    figure, axes = pyplot.subplots(1, 4, figsize=(16, 3.8))
    for axis, name in zip(axes, ("ndcg", "recall", "precision", "map"), strict=True):
        for ranker in result.rankers.values():
            values = ranker.curves[name]
            axis.plot(range(1, len(values) + 1), values, marker=".", label=ranker.name)
        axis.set_title(f"{_LABELS[name]}@k")
        axis.set_xlabel("k")
        axis.axvline(result.k, color="grey", linewidth=0.6, linestyle=":")
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    text = _svg(figure)
    pyplot.close(figure)
    return text


def _difference_figure(result: EvaluationResult) -> str | None:
    if not result.comparisons:
        return None
    pyplot = require("matplotlib.pyplot", extra="plots")
    figure, axis = pyplot.subplots(figsize=(7, 3.5))
    retrieval = result.rankers["retrieval"].per_user["ndcg"]
    for label in result.comparisons:
        name = label.split(" vs ")[0]
        difference = result.rankers[name].per_user["ndcg"] - retrieval
        axis.hist(difference, bins=41, range=(-1, 1), alpha=0.5, label=name)
    axis.axvline(0.0, color="black", linewidth=0.8)
    axis.set_title(f"Per-user NDCG@{result.k} minus retrieval only (right of 0: ranker better)")
    axis.set_xlabel("difference")
    axis.set_ylabel("users")
    axis.legend(fontsize="small")
    text = _svg(figure)
    pyplot.close(figure)
    return text


def _trade_off_figure(curve: PolicyCurve) -> str:
    """NDCG@k against each diversity metric, one panel each, a point per λ."""
    pyplot = require("matplotlib.pyplot", extra="plots")
    columns = _curve_columns(curve)
    figure, axes = pyplot.subplots(1, len(columns), figsize=(4 * len(columns), 3.6), squeeze=False)
    k = curve.k
    rows = list(curve.rows.values())
    ys = [row.metrics[f"ndcg@{k}"] for row in rows]
    for axis, name in zip(axes[0], columns, strict=True):
        xs = [row.metrics[f"{name}@{k}"] for row in rows]
        axis.plot(xs, ys, marker="o")
        for row, x, y in zip(rows, xs, ys, strict=True):
            axis.annotate(f"λ={row.trade_off:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        axis.set_xlabel(f"{_label(name)}@{k} (right: more varied)")
        axis.set_ylabel(f"NDCG@{k}")
        axis.grid(alpha=0.3)
    text = _svg(figure)
    pyplot.close(figure)
    return text


def _curve_section(result: EvaluationResult) -> str:
    curve = result.diversity_curve
    if curve is None:
        return ""
    k = curve.k
    columns = _curve_columns(curve)
    header = "".join(f"<th>{html.escape(_label(c))}@{k}</th>" for c in columns)
    rows = []
    for row in curve.rows.values():
        versus = row.versus_first
        difference = (
            ""
            if versus is None
            else f"{versus.mean_difference:+.4f}<br><small>[{versus.ci_low:+.4f}, {versus.ci_high:+.4f}]</small>"
        )
        cells = "".join(f"<td>{row.metrics[f'{c}@{k}']:.4f}</td>" for c in columns)
        rows.append(
            f"<tr><td>{row.trade_off:g}</td><td>{row.metrics[f'ndcg@{k}']:.4f}</td><td>{difference}</td>{cells}</tr>"
        )
    return f"""<h2>Relevance against variety: MMR over λ</h2>
<p>The recommended pipeline's {curve.candidates} ranked candidates per user reshaped by MMR(λ) (min-max relevance,
cosine similarity of the item vectors), top {k}, {curve.n_users} users. Δ NDCG is the paired per-user difference
from λ = 0 with its {_confidence(result)} bootstrap interval. Diversity metrics: higher is more varied.</p>
<table><tr><th>λ</th><th>NDCG@{k}</th><th>Δ NDCG vs λ=0</th>{header}</tr>
{"".join(rows)}</table>
{_trade_off_figure(curve)}"""


def html_report(result: EvaluationResult, *, title: str, notes: list[str] | None = None) -> str:
    """A self-contained HTML page: tables, summary and plots of an evaluation.

    The plots: metric@k curves, the per-user difference histogram and, when
    measured, the MMR trade-off curve (NDCG@k against each diversity metric).

    Plots are inline SVG, so the page needs no other file.

    Raises:
        MissingDependencyError: matplotlib (extra ``plots``) is not installed.
    """
    k = result.k
    header, rows = result.table_rows()
    table = "".join(
        ["<table><tr>", *(f"<th>{html.escape(h)}</th>" for h in header), "</tr>"]
        + ["<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in rows]
        + ["</table>"]
    )
    comparison_rows = []
    for label, per_metric in result.comparisons.items():
        cells = "".join(
            f"<td>{c.mean_difference:+.4f}<br><small>[{c.ci_low:+.4f}, {c.ci_high:+.4f}]</small></td>"
            for c in (per_metric[name] for name in METRIC_NAMES)
        )
        ndcg = per_metric["ndcg"]
        comparison_rows.append(
            f"<tr><td>{html.escape(label)}</td>{cells}<td>{ndcg.wins} / {ndcg.losses} / {ndcg.ties}</td>"
            f"<td class='{ndcg.verdict().split()[0]}'>{html.escape(ndcg.verdict())}</td></tr>"
        )
    comparison_header = "".join(f"<th>Δ {_LABELS[name]}@{k}</th>" for name in METRIC_NAMES)
    rating = ""
    if result.rating_errors:
        rating = (
            f"<h2>Scoring model as a rating predictor</h2><p>RMSE {result.rating_errors['rmse']:.4f}, "
            f"MAE {result.rating_errors['mae']:.4f} over {int(result.rating_errors['n'])} test ratings.</p>"
        )
    difference = _difference_figure(result)
    extra = "".join(f"<li>{html.escape(note)}</li>" for note in notes or [])
    summary = "".join(f"<li>{html.escape(line)}</li>" for line in result.summary())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border: 1px solid #ccc; padding: 4px 10px; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
.better {{ color: #1a7f37; font-weight: bold; }} .worse {{ color: #c62828; font-weight: bold; }}
.no {{ color: #8a6d00; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{result.n_users} users ({result.skipped_users} skipped as unknown), {result.candidates} candidates retrieved per
user, seen items {"excluded" if result.exclude_seen else "kept"}, catalogue of {result.catalog_size} items.
Higher is better for every ranking metric; for the beyond-accuracy ones (coverage, intra-list diversity, novelty,
distinct values) higher is more varied.</p>
<ul>{summary}{extra}</ul>
<h2>Quality at k = {k}</h2>{table}
<h2>Paired comparison with retrieval only</h2>
<p>Mean per-user difference (ranker minus retrieval only) with its bootstrap confidence interval;
wins / losses / ties count users.</p>
<table><tr><th>comparison</th>{comparison_header}<th>wins / losses / ties</th><th>verdict (NDCG)</th></tr>
{"".join(comparison_rows)}</table>
{rating}
<h2>Metrics at every cut-off</h2>{_curve_figure(result)}
{"<h2>Who gains, who loses</h2>" + difference if difference else ""}
{_curve_section(result)}
</body></html>
"""

"""What a training run measured, written as ``training_report.json`` next to the models."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from two_stage_rec.errors import ModelError
from two_stage_rec.types import Feedback

__all__ = ["REPORT_FILE", "Feedback", "TrainingReport", "library_versions"]

REPORT_FILE = "training_report.json"
"""The report's name inside a directory; a bundle uses the same (:data:`two_stage_rec.bundle.REPORT`)."""


def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries that shape the numbers."""
    versions = {"python": platform.python_version()}
    for name in ("two-stage-rec", "numpy", "tensorflow", "keras"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


@dataclass(frozen=True, kw_only=True)
class TrainingReport:
    """Metrics and circumstances of one training run.

    Attributes:
        metrics: e.g. ``retrieval/test/top_100_accuracy`` (higher is better),
            ``scoring/test/rmse`` (explicit feedback; lower is better) or
            ``scoring/test/auc`` (implicit; higher is better); keys name split and metric.
        epochs: epochs run and epoch kept, per model
            (``retrieval``, ``retrieval_best``, ``scoring``, ``scoring_best``).
        wall_time_s: seconds of wall time per stage (``retrieval``, ``scoring``, ``export``).
        seed: the seed the run used.
        config: the :class:`~two_stage_rec.training.TrainingConfig` as a dict.
        data: sizes of what was trained and evaluated on.
        versions: :func:`library_versions` at training time.
        history: per-epoch values per model (loss and validation metric).
        feedback: ``"explicit"`` (the scoring model predicts ratings) or
            ``"implicit"`` (it outputs a relevance logit); reports written
            before implicit training existed read as explicit.
    """

    metrics: dict[str, float]
    epochs: dict[str, int]
    wall_time_s: dict[str, float]
    seed: int
    config: dict[str, Any]
    data: dict[str, int] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=library_versions)
    history: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    feedback: Feedback = "explicit"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the report as JSON (a directory gets ``training_report.json``)."""
        target = Path(path)
        if target.is_dir():
            target = target / REPORT_FILE
        target.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TrainingReport:
        """Read a report written by :meth:`save` (a directory means its ``training_report.json``).

        Raises:
            ModelError: the file is missing or not a training report.
        """
        source = Path(path)
        if source.is_dir():
            source = source / REPORT_FILE
        try:
            raw = json.loads(source.read_text(encoding="utf-8"))
            report = cls(**raw)
        except (OSError, ValueError, TypeError) as exc:
            raise ModelError(f"{source} is not a training report: {exc}") from exc
        if report.feedback not in ("explicit", "implicit"):
            raise ModelError(f"{source}: unknown feedback {report.feedback!r}; expected 'explicit' or 'implicit'")
        return report

"""Write a models directory: three SavedModels, the numpy twins, and the report."""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time
from pathlib import Path

from two_stage_rec.errors import PersistenceError
from two_stage_rec.training.models import TrainedModels

__all__ = ["export_models"]


def export_models(models: TrainedModels, path: str | os.PathLike[str], *, saved_models: bool = True) -> Path:
    """Write ``models`` to the directory ``path`` (created if needed).

    Everything is first written to a temporary sibling directory; only when
    all files are complete do they replace the same-named entries in ``path``
    (other files there are left alone), so a failed export leaves a previous
    one intact.

    Args:
        models: the trained models.
        path: the models directory.
        saved_models: also write the TensorFlow SavedModels (needs the
            ``tensorflow`` extra); False writes only the numpy files and report.

    Returns:
        The directory.

    Raises:
        PersistenceError: the directory cannot be written.
    """
    # Imported here: artifacts imports training.report, so a top-level import would be circular.
    from two_stage_rec.bundle import (
        ITEM_EMBEDDINGS,
        ITEM_MODEL,
        REPORT,
        SCORING_MLP,
        SCORING_MODEL,
        USER_EMBEDDINGS,
        USER_MODEL,
    )

    started = time.perf_counter()
    root = Path(path)
    try:
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".export-", dir=root))
    except OSError as exc:
        raise PersistenceError(f"cannot create models directory {root}: {exc}") from exc
    try:
        models.user_embedder().save(staging / USER_EMBEDDINGS)
        models.item_embedder().save(staging / ITEM_EMBEDDINGS)
        models.reranker.save(staging / SCORING_MLP)
        names = [USER_EMBEDDINGS, ITEM_EMBEDDINGS, SCORING_MLP]
        if saved_models:
            from two_stage_rec.training.savedmodel import keyed_vectors_module, save_module, scoring_module

            save_module(
                keyed_vectors_module(models.user_keys, models.user_vectors, models.user_unknown),
                staging / USER_MODEL,
            )
            save_module(
                keyed_vectors_module(models.item_keys, models.item_vectors, models.item_unknown),
                staging / ITEM_MODEL,
            )
            save_module(scoring_module(models.reranker), staging / SCORING_MODEL)
            names += [USER_MODEL, ITEM_MODEL, SCORING_MODEL]
        wall = dict(models.report.wall_time_s, export=round(time.perf_counter() - started, 3))
        dataclasses.replace(models.report, wall_time_s=wall).save(staging / REPORT)
        names.append(REPORT)
        for name in names:
            target = root / name
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(staging / name, target)
    except OSError as exc:
        raise PersistenceError(f"cannot write models to {root}: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root

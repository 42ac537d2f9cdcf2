"""Write a models-only directory: the towers' tables, the scoring MLP, the SavedModels and the report.

For serving, write a bundle instead (:func:`two_stage_rec.bundle.write_bundle`,
:func:`two_stage_rec.workflow.train_bundle`): it adds the catalogue, seen items,
popularity and the recommended reranker. This is for handing the models alone to
another runtime (e.g. the three SavedModels to TensorFlow Serving).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time
from pathlib import Path

from two_stage_rec._atomic import fsync_directory, fsync_tree, replace_directory
from two_stage_rec.errors import PersistenceError
from two_stage_rec.training.models import TrainedModels

__all__ = ["export_models"]


def export_models(models: TrainedModels, path: str | os.PathLike[str], *, saved_models: bool = True) -> Path:
    """Write ``models`` to the directory ``path`` (created if needed), for :func:`~two_stage_rec.bundle.load_models`.

    Everything is first written to a temporary directory inside ``path`` and
    fsynced; only when all files are complete does each replace its same-named
    entry (a file with ``os.replace``, a SavedModel directory with
    :func:`~two_stage_rec._atomic.replace_directory`). Other entries of
    ``path`` are left alone, so unlike a bundle the directory as a whole is
    not swapped: each entry is old or new, never half-written.

    Args:
        models: the trained models.
        path: the directory.
        saved_models: also write the TensorFlow SavedModels (needs the ``tensorflow`` extra).

    Returns:
        The directory.

    Raises:
        PersistenceError: the directory cannot be written.
    """
    # Imported here: the bundle module reads training reports, so importing it at the top would be circular.
    from two_stage_rec.bundle import REPORT, write_model_files

    started = time.perf_counter()
    root = Path(path)
    try:
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".export-", dir=root))
    except OSError as exc:
        raise PersistenceError(f"cannot create models directory {root}: {exc}") from exc
    try:
        names = write_model_files(
            staging,
            user_keys=models.user_keys,
            user_vectors=models.user_vectors,
            item_keys=models.item_keys,
            item_vectors=models.item_vectors,
            scoring=models.reranker,
            saved_models=saved_models,
            user_unknown=models.user_unknown,
            item_unknown=models.item_unknown,
        )
        wall = dict(models.report.wall_time_s, export=round(time.perf_counter() - started, 3))
        dataclasses.replace(models.report, wall_time_s=wall).save(staging / REPORT)
        fsync_tree(staging)
        for name in [*names, REPORT]:
            if (staging / name).is_dir():
                replace_directory(staging / name, root / name)
            else:
                os.replace(staging / name, root / name)
        fsync_directory(root)
    except OSError as exc:
        raise PersistenceError(f"cannot write models to {root}: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root

"""The atomic-write primitives every persisting writer uses (``two_stage_rec._atomic``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from two_stage_rec._atomic import atomic_directory, atomic_file, replace_directory, write_atomically


def test_atomic_file_replaces_whole_or_not_at_all(tmp_path: Path) -> None:
    target = tmp_path / "file.json"
    write_atomically(target, b"old")
    with pytest.raises(RuntimeError), atomic_file(target) as handle:
        handle.write(b"half of the new")
        raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old"
    write_atomically(target, b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["file.json"]  # no temporary file left


def test_atomic_directory_swaps_the_whole_directory(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "models"
    with atomic_directory(target) as staging:
        (staging / "a.txt").write_text("1")
        (staging / "stale.txt").write_text("1")
    with atomic_directory(target) as staging:
        (staging / "a.txt").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["a.txt"]  # nothing of the old copy survives
    assert (target / "a.txt").read_text() == "2"
    assert [p.name for p in target.parent.iterdir()] == ["models"]


def test_a_failure_inside_atomic_directory_keeps_the_old_copy(tmp_path: Path) -> None:
    target = tmp_path / "models"
    with atomic_directory(target) as staging:
        (staging / "a.txt").write_text("old")
    with pytest.raises(KeyboardInterrupt), atomic_directory(target) as staging:
        (staging / "a.txt").write_text("new")
        raise KeyboardInterrupt
    assert (target / "a.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["models"]


def test_a_failed_swap_puts_the_old_directory_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target, new = tmp_path / "models", tmp_path / "new"
    target.mkdir()
    (target / "a.txt").write_text("old")
    new.mkdir()
    real_rename = os.rename

    def rename(source: str | os.PathLike[str], destination: str | os.PathLike[str]) -> None:
        if Path(source) == new:
            raise OSError(5, "Input/output error")
        real_rename(source, destination)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(OSError, match="Input/output"):
        replace_directory(new, target)
    monkeypatch.undo()
    assert (target / "a.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models", "new"]

"""One progress line per training stage, advanced once per epoch (tqdm)."""

from __future__ import annotations

from types import TracebackType
from typing import Any

__all__ = ["EpochProgress"]


class EpochProgress:
    """A tqdm bar over epochs whose postfix shows the last epoch's numbers."""

    def __init__(self, stage: str, epochs: int, *, enabled: bool) -> None:
        from tqdm.auto import tqdm

        self._bar: Any = tqdm(total=epochs, desc=stage, unit="epoch", disable=not enabled, leave=True)

    def update(self, record: dict[str, float]) -> None:
        """Advance one epoch and show ``record`` (epoch number left out)."""
        self._bar.set_postfix({k: f"{v:.4f}" for k, v in record.items() if k != "epoch"}, refresh=False)
        self._bar.update(1)

    def __enter__(self) -> EpochProgress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._bar.close()

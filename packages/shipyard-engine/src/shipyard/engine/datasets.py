"""Kedro datasets that write atomically (temporary sibling, then rename)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset
from shipyard.core.atomic import atomic_path, write_json

__all__ = ["BundleDataset", "CsvFrame", "JsonData", "ParquetFrame", "TextData"]


class _FileDataset(AbstractDataset[Any, Any]):
    def __init__(self, filepath: str | Path) -> None:
        self.filepath = Path(filepath)

    def _exists(self) -> bool:
        return self.filepath.exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self.filepath)}


class ParquetFrame(_FileDataset):
    def load(self) -> Any:
        import pandas as pd

        return pd.read_parquet(self.filepath)

    def save(self, data: Any) -> None:
        with atomic_path(self.filepath) as tmp:
            data.to_parquet(tmp, index=False)


class CsvFrame(_FileDataset):
    def load(self) -> Any:
        import pandas as pd

        return pd.read_csv(self.filepath)

    def save(self, data: Any) -> None:
        with atomic_path(self.filepath) as tmp:
            data.to_csv(tmp, index=False)


class JsonData(_FileDataset):
    def load(self) -> Any:
        return json.loads(self.filepath.read_text())

    def save(self, data: Any) -> None:
        write_json(self.filepath, data)


class TextData(_FileDataset):
    def load(self) -> Any:
        return self.filepath.read_text()

    def save(self, data: Any) -> None:
        from shipyard.core.atomic import write_text

        write_text(self.filepath, data)


class BundleDataset(_FileDataset):
    """A model bundle folder (see :mod:`shipyard.train.bundle`)."""

    def load(self) -> Any:
        from shipyard.train.bundle import ModelBundle

        return ModelBundle.load(self.filepath)

    def save(self, data: Any) -> None:
        data.save(self.filepath)

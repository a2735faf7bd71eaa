"""An image folder source: one sub-folder per class, every image resized to ``data.shape``."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from shipyard.core.errors import DataError
from shipyard.core.schema import SourceConf

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["IMAGE_SUFFIXES", "read_image_folder"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def read_image_folder(source: SourceConf, shape: list[int], root: Path) -> pd.DataFrame:
    """One row per image: ``path`` (the key), ``pixel_<i>`` features in [0, 1], ``label``.
    ``shape`` is ``data.shape`` [channels (1 or 3), height, width] (checked by the schema's rules)."""
    import numpy as np
    import pandas as pd
    from PIL import Image, UnidentifiedImageError

    folder = root / str(source.path)
    if not folder.is_dir():
        raise DataError(
            f"image folder {source.path} does not exist", where=str(source.path), fix="fix data.source.path"
        )
    channels, height, width = (int(v) for v in shape)
    mode = "L" if channels == 1 else "RGB"
    rows, keys, labels = [], [], []
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
        name = str(path.relative_to(root))
        try:
            with warnings.catch_warnings():
                # Past MAX_IMAGE_PIXELS PIL only warns, then decodes it all: refuse it like a bomb.
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(path) as image:
                    pixels = np.asarray(image.convert(mode).resize((width, height)), dtype=np.float32) / 255.0
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise DataError(
                f"image {name} is too large to decode safely (a decompression bomb?): {exc}",
                where=name,
                fix=f"replace it with a smaller image (it is resized to {height}x{width} anyway), or delete it",
            ) from exc
        except (UnidentifiedImageError, OSError) as exc:
            raise DataError(
                f"image {name} cannot be decoded: {exc}", where=name, fix="replace or delete the file"
            ) from exc
        pixels = pixels.reshape(height, width, channels).transpose(2, 0, 1)
        rows.append(pixels.reshape(-1))
        keys.append(path.relative_to(folder).as_posix())
        labels.append(path.relative_to(folder).parts[0])
    if not rows:
        raise DataError(
            f"image folder {source.path} holds no images", where=str(source.path), fix="one sub-folder per class"
        )
    frame = pd.DataFrame(np.stack(rows), columns=[f"pixel_{i}" for i in range(len(rows[0]))])
    frame.insert(0, "path", keys)
    frame["label"] = labels
    return frame

"""Site images: where they may be read from, and whether a file really is a usable image.

Every problem is a `Failure(image_unreadable)` naming the image, with the reason as its detail: missing,
empty, not an image, truncated, too large, or outside the configured image roots.
"""

import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from tools.observations import Failure

SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
# 100 megapixels: a 12000×9000 photo still loads (1.2 GB as 32-bit RGBA at worst), 12000×12000 does not.
MAX_PIXELS = 100_000_000


def unreadable(image: Path | str, reason: str) -> Failure:
    return Failure("image_unreadable", reason, image=str(image))


def inside_roots(path: Path, roots: Iterable[Path], shown: Path | str | None = None) -> Path:
    """`path` resolved, if it lies inside one of `roots` (symbolic links followed)."""
    resolved = path.resolve()
    roots = [root.resolve() for root in roots]
    if not any(resolved.is_relative_to(root) for root in roots):
        listed = ", ".join(map(str, roots)) or "none configured"
        raise unreadable(shown or path, f"outside the configured image roots ({listed})")
    return resolved


def _open(path: Path, shown: Path | str) -> Image.Image:
    if not path.exists():
        raise unreadable(shown, "no such file")
    if not path.is_file():
        raise unreadable(shown, "not a file")
    if path.stat().st_size == 0:
        raise unreadable(shown, "empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
    except Image.DecompressionBombError:
        raise unreadable(shown, f"larger than {MAX_PIXELS // 1_000_000} megapixels") from None
    except OSError:
        raise unreadable(shown, "not an image file") from None
    width, height = image.size
    if width * height > MAX_PIXELS:
        image.close()
        raise unreadable(shown, f"{width}×{height} is larger than {MAX_PIXELS // 1_000_000} megapixels")
    return image


def probe(path: Path, shown: Path | str | None = None) -> tuple[int, int]:
    """Width and height from the file's header, without decoding it: the cheap check for imports."""
    with _open(path, shown or path) as image:
        return image.size


def load(path: Path, shown: Path | str | None = None) -> np.ndarray:
    """The whole image decoded as an upright 8-bit BGR array (grey, palette and alpha images converted)."""
    with _open(path, shown or path) as image:
        try:
            upright = ImageOps.exif_transpose(image).convert("RGB")
        except (OSError, SyntaxError, ValueError) as error:
            raise unreadable(shown or path, f"damaged or truncated: {error}") from None
    return np.ascontiguousarray(np.asarray(upright)[:, :, ::-1])


def in_folder(folder: Path) -> Iterator[Path]:
    """The image files under `folder`, recursively, in a stable order."""
    return (p for p in sorted(folder.rglob("*")) if p.suffix.lower() in SUFFIXES and p.is_file())

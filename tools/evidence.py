"""Evidence images: the photo with the boxes the answer rests on, drawn with OpenCV (no fonts needed)."""

import hashlib
from pathlib import Path

import numpy as np

from tools.scene import Box, Person

# BGR colours: a person's box says what was judged about them.
_COLOURS = {"helmet": (60, 180, 60), "no_helmet": (40, 40, 220), "unknown": (0, 200, 230)}
_EQUIPMENT = (220, 120, 30)


def _draw(canvas: np.ndarray, box: Box, colour: tuple[int, int, int], text: str, thickness: int) -> None:
    import cv2

    top_left, bottom_right = (int(box.x1), int(box.y1)), (int(box.x2), int(box.y2))
    cv2.rectangle(canvas, top_left, bottom_right, colour, thickness)
    scale = max(canvas.shape[:2]) / 1500
    (width, height), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    origin = (top_left[0], max(top_left[1], height + 4))
    cv2.rectangle(canvas, (origin[0], origin[1] - height - 4), (origin[0] + width + 4, origin[1]), colour, -1)
    cv2.putText(canvas, text, (origin[0] + 2, origin[1] - 3), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1)


def draw(image: np.ndarray, people: list[Person]) -> np.ndarray:
    """A copy of `image` (BGR) with each person, their head and their equipment boxed and labelled."""
    canvas = image.copy()
    thickness = max(2, max(image.shape[:2]) // 400)
    for person in people:
        colour = _COLOURS[person.helmet]
        _draw(canvas, person.box, colour, f"{person.box.role} {person.box.confidence:.2f}", thickness)
        if person.head is not None and person.head is not person.box:
            _draw(canvas, person.head, colour, f"{person.head.role} {person.head.confidence:.2f}", thickness)
        for item in person.equipment:
            _draw(canvas, item, _EQUIPMENT, f"{item.label} {item.confidence:.2f}", thickness)
    return canvas


def save(image: np.ndarray, people: list[Person], source: str, check: str, folder: Path) -> Path:
    """Write the evidence image for `source` into `folder`; the name tells the image and check apart."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha1(source.encode("utf-8")).hexdigest()[:8]
    path = folder / f"{Path(source).stem}-{digest}-{check}.jpg"
    if not cv2.imwrite(str(path), draw(image, people)):
        raise OSError(f"could not write the evidence image {path}")
    return path

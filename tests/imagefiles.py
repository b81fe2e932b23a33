"""Image files for tests, built with Pillow: photos-like content, and the broken kinds S3 will get."""
from __future__ import annotations

import io
import random

from PIL import Image, ImageDraw

from tests.conftest import TESTDATA


def real(name: str) -> bytes:
    return (TESTDATA / name).read_bytes()


def picture(width: int = 96, height: int = 64, seed: int = 0, fmt: str = "JPEG", **save) -> bytes:
    """A distinct picture per seed: coloured shapes on a gradient (varied enough for the perceptual hash)."""
    rng = random.Random(seed)
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        x1, y1 = x0 + rng.randrange(4, width // 2 + 5), y0 + rng.randrange(4, height // 2 + 5)
        draw.rectangle((x0, y0, x1, y1), fill=tuple(rng.randrange(256) for _ in range(3)))
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save)
    return buffer.getvalue()


def bomb() -> bytes:
    """A 1-bit PNG of 20,000 × 20,000 pixels (400 MP): tiny on disk, huge once decoded."""
    buffer = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(buffer, "PNG")
    return buffer.getvalue()


def truncated_jpeg() -> bytes:
    whole = real("rocket.jpg")
    return whole[: len(whole) // 2]


def text_as_jpeg() -> bytes:
    return b"name,label\ncat.jpg,cat\n"


def oriented(width: int, height: int, orientation: int, seed: int = 0) -> bytes:
    """A JPEG stored `width`×`height` whose EXIF orientation tag is `orientation`; its top-left
    stored quarter is pure blue, so where it lands shows how the image was turned."""
    image = Image.open(io.BytesIO(picture(width, height, seed=seed)))
    image.paste((0, 0, 255), (0, 0, width // 4, height // 4))
    exif = image.getexif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif, quality=95)
    return buffer.getvalue()

"""Facts of one uploaded image (format, size, EXIF, perceptual hash, thumbnail) from its bytes alone.

Pure Pillow and stdlib, so the ingest Lambda stays small and nothing here touches AWS. Every byte
is untrusted: the size is checked from the header before any pixel is decoded, JPEGs are decoded
in the DCT domain at thumbnail scale, and every error Pillow raises for bad bytes comes out as
`ImageRejectedError` with a reason a person can read.
"""
from __future__ import annotations

import hashlib
import io
import math
import statistics
import struct
import tempfile
from dataclasses import dataclass
from datetime import datetime
from operator import add, mul, sub
from typing import BinaryIO, Iterable

from PIL import Image, ImageOps, JpegImagePlugin, UnidentifiedImageError

from chalicelib.errors import ImageRejectedError

ALLOWED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
DEFAULT_MAX_PIXELS = 50_000_000
THUMBNAIL_SIZE = 256

_MIME_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif",
               "BMP": "image/bmp", "TIFF": "image/tiff"}
_THUMBNAIL_QUALITY = 85
# Modes that Pillow can reduce and resize in place; everything else is converted strip by strip.
_DIRECT_MODES = frozenset({"RGB", "L", "CMYK"})
_STRIP_BYTES = 8 * 2**20
_WHITE = (255, 255, 255)

# What Pillow raises for malformed input: the set its own fuzz tests accept, plus the parsing
# errors of its pure-Python plugins. MemoryError is here because a forged header can ask for it.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, struct.error, EOFError, IndexError, KeyError, TypeError,
                  ZeroDivisionError, OverflowError, NotImplementedError, MemoryError)

_TAG_ORIENTATION, _TAG_MAKE, _TAG_MODEL, _TAG_DATETIME = 0x0112, 0x010F, 0x0110, 0x0132
_IFD_EXIF, _TAG_DATETIME_ORIGINAL = 0x8769, 0x9003
_IFD_GPS, _TAG_GPS_LATITUDE, _TAG_GPS_LONGITUDE = 0x8825, 0x0002, 0x0004
_TRANSPOSES = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

_HASH_SIDE = 32
_HASH_HALF = _HASH_SIDE // 2
# First half of the DCT-II basis for the 8 lowest frequencies over 32 samples: frequency k is
# symmetric (k even) or antisymmetric (k odd) about the middle, which halves the multiplications.
# The scale factor is left out because the hash only compares coefficients with their median.
_HALF_COSINES = tuple(
    tuple(math.cos(math.pi * k * (2 * n + 1) / (2 * _HASH_SIDE)) for n in range(_HASH_HALF))
    for k in range(8)
)


@dataclass(frozen=True)
class Spooled:
    """Bytes copied into a seekable file, with their size and SHA-256."""

    file: BinaryIO
    size: int
    sha256: str


def spool(chunks: Iterable[bytes], *, memory_limit: int = 32 * 2**20) -> Spooled:
    """Copy a byte stream (e.g. an S3 body's iter_chunks()) into a seekable spool, hashing on the way.

    The file is a `SpooledTemporaryFile` that stays in memory up to `memory_limit` bytes and rolls
    to disk past it; it is returned positioned at 0 and the caller closes it.
    """
    file = tempfile.SpooledTemporaryFile(max_size=memory_limit)
    digest = hashlib.sha256()
    size = 0
    try:
        for chunk in chunks:
            digest.update(chunk)
            file.write(chunk)
            size += len(chunk)
    except BaseException:
        file.close()
        raise
    file.seek(0)
    return Spooled(file=file, size=size, sha256=digest.hexdigest())


@dataclass(frozen=True)
class ImageFacts:
    """What ingestion records about one image; width and height are as displayed (EXIF orientation applied)."""

    format: str
    mime_type: str
    width: int
    height: int
    sha256: str
    phash: str
    exif: dict
    thumbnail: bytes
    frames: int


def inspect(spooled: Spooled, *, max_pixels: int = DEFAULT_MAX_PIXELS,
            thumbnail_size: int = THUMBNAIL_SIZE) -> ImageFacts:
    """Facts of one image; raises chalicelib.errors.ImageRejectedError(reason) for anything that is
    not an acceptable image.

    Only the first frame is decoded, and only once. An image over `max_pixels` is rejected from
    its header, before any pixel is decoded. The spooled file is left open, positioned at 0.
    """
    if spooled.size == 0:
        raise ImageRejectedError("empty file (0 bytes)")
    spooled.file.seek(0)
    try:
        with Image.open(spooled.file, formats=ALLOWED_FORMATS) as image:
            return _facts(image, spooled.sha256, max_pixels, thumbnail_size)
    except UnidentifiedImageError as exc:
        raise ImageRejectedError(
            f"not a recognised image format (allowed: {', '.join(ALLOWED_FORMATS)})") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejectedError(f"image is too large to decode (decompression bomb guard): {exc}") from exc
    except _DECODE_ERRORS as exc:
        raise ImageRejectedError(f"truncated or corrupt image data: {_describe(exc)}") from exc
    finally:
        spooled.file.seek(0)


def _facts(image: Image.Image, sha256: str, max_pixels: int, thumbnail_size: int) -> ImageFacts:
    width, height = image.size
    if width * height > max_pixels:
        raise ImageRejectedError(
            f"image is {width}x{height} = {width * height / 1e6:.1f} MP, over the "
            f"{max_pixels / 1e6:.1f} MP limit (decompression bomb guard)")
    if width < 1 or height < 1:
        raise ImageRejectedError(f"image has no pixels ({width}x{height})")
    # Multi-picture JPEGs (MPO, from some cameras) are ordinary JPEGs to every viewer.
    image_format = "JPEG" if image.format == "MPO" else image.format
    image.draft("RGB", (thumbnail_size, thumbnail_size))
    image.load()
    exif = _exif(image)
    small = _orient(_shrink(image, _fit(width, height, thumbnail_size)), exif["orientation"])
    if exif["orientation"] in (5, 6, 7, 8):
        width, height = height, width
    return ImageFacts(
        format=image_format,
        mime_type=_MIME_TYPES[image_format],
        width=width,
        height=height,
        sha256=sha256,
        phash=_phash(small),
        exif=exif,
        thumbnail=_jpeg(small),
        frames=getattr(image, "n_frames", 1),
    )


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _fit(width: int, height: int, size: int) -> tuple[int, int]:
    """Thumbnail size in stored orientation: longest side min(size, longest), aspect kept."""
    scale = min(1.0, size / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _shrink(image: Image.Image, target: tuple[int, int]) -> Image.Image:
    """An RGB copy of `image` at `target` size, never holding a second full-size copy."""
    width, height = image.size
    # Box reduction down to about twice the target, then bicubic for the rest: what
    # Image.thumbnail does, and at 256 px indistinguishable from LANCZOS at half its cost.
    factors = (max(1, width // (2 * target[0])), max(1, height // (2 * target[1])))
    reduce = factors != (1, 1)
    if image.mode in _DIRECT_MODES and "transparency" not in image.info:
        small = image.reduce(factors) if reduce else image
        if small.size != target:
            small = small.resize(target, Image.Resampling.BICUBIC)
        return small.convert("RGB")
    small = _reduce_in_strips(image, factors)
    return small.resize(target, Image.Resampling.BICUBIC) if small.size != target else small


def _reduce_in_strips(image: Image.Image, factors: tuple[int, int]) -> Image.Image:
    # Converting a whole 50 MP RGBA or palette image to RGB would double its memory; strips do not.
    width, height = image.size
    fx, fy = factors
    levels = _levels(image)
    rows = max(fy, _STRIP_BYTES // (4 * width) // fy * fy)
    out = Image.new("RGB", (-(-width // fx), -(-height // fy)))
    for top in range(0, height, rows):
        piece = _flatten(image.crop((0, top, width, min(height, top + rows))), levels)
        out.paste(piece.reduce(factors) if factors != (1, 1) else piece, (0, top // fy))
    return out


def _levels(image: Image.Image) -> tuple[float, float] | None:
    """Scale and offset that map a high-bit-depth image onto 0..255, or None for 8-bit modes.

    16-bit samples are scaled as every viewer shows them; 32-bit integers and floats have no
    canonical range, so whatever range they use is stretched to full contrast.
    """
    if image.mode.startswith("I;16"):
        return 1 / 257, 0.0
    if image.mode in ("I", "F"):
        low, high = image.getextrema()
        if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
            return 0.0, 0.0
        return 255 / (high - low), -low * 255 / (high - low)
    return None


def _flatten(piece: Image.Image, levels: tuple[float, float] | None) -> Image.Image:
    """`piece` as RGB: deep greys scaled to 8 bits, palettes expanded, transparency over white."""
    if levels is not None:
        scale, offset = levels
        if piece.mode not in ("I", "F"):
            piece = piece.convert("I")
        piece = piece.point(lambda value: value * scale + offset).convert("L")
    if piece.mode in ("P", "PA", "RGBa", "La") or "transparency" in piece.info:
        piece = piece.convert("RGBA")
    if piece.mode in ("RGBA", "LA"):
        flat = Image.new("RGB", piece.size, _WHITE)
        flat.paste(piece, mask=piece.getchannel("A"))
        return flat
    return piece.convert("RGB")


def _orient(image: Image.Image, orientation: int | None) -> Image.Image:
    method = _TRANSPOSES.get(orientation)
    return image.transpose(method) if method is not None else image


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=_THUMBNAIL_QUALITY)
    return buffer.getvalue()


def _phash(image: Image.Image) -> str:
    """DCT pHash as `imagehash.phash` defines it: 32x32 grey, 8x8 lowest frequencies above their median."""
    pixels = image.convert("L").resize((_HASH_SIDE, _HASH_SIDE), Image.Resampling.LANCZOS).tobytes()
    rows = [pixels[y * _HASH_SIDE:(y + 1) * _HASH_SIDE] for y in range(_HASH_SIDE)]
    mirrored = [(rows[n], rows[-1 - n]) for n in range(_HASH_HALF)]
    # Down the columns first: sums feed the even frequencies, differences the odd ones.
    sums = list(zip(*(map(add, top, bottom) for top, bottom in mirrored)))
    differences = list(zip(*(map(sub, top, bottom) for top, bottom in mirrored)))
    coefficients = []
    for k, cosine in enumerate(_HALF_COSINES):
        row = [sum(map(mul, cosine, column)) for column in (differences if k & 1 else sums)]
        left, right = row[:_HASH_HALF], row[:_HASH_HALF - 1:-1]
        row_sums, row_differences = list(map(add, left, right)), list(map(sub, left, right))
        coefficients.extend(sum(map(mul, cosine_v, row_differences if v & 1 else row_sums))
                            for v, cosine_v in enumerate(_HALF_COSINES))
    median = statistics.median(coefficients)
    bits = 0
    for coefficient in coefficients:
        bits = bits << 1 | (coefficient > median)
    return f"{bits:016x}"


def _exif(image: Image.Image) -> dict:
    """Orientation, camera, capture time and GPS presence; anything malformed reads as absent."""
    facts = {"orientation": None, "make": None, "model": None, "captured_at": None, "has_gps": False}
    try:
        exif = image.getexif()
    except _DECODE_ERRORS:
        return facts
    orientation = exif.get(_TAG_ORIENTATION)
    facts["orientation"] = orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else None
    facts["make"] = _text(exif.get(_TAG_MAKE))
    facts["model"] = _text(exif.get(_TAG_MODEL))
    facts["captured_at"] = (_timestamp(_ifd(exif, _IFD_EXIF).get(_TAG_DATETIME_ORIGINAL))
                            or _timestamp(exif.get(_TAG_DATETIME)))
    gps = _ifd(exif, _IFD_GPS)
    facts["has_gps"] = _TAG_GPS_LATITUDE in gps or _TAG_GPS_LONGITUDE in gps
    return facts


def _ifd(exif: Image.Exif, tag: int) -> dict:
    try:
        return dict(exif.get_ifd(tag))
    except _DECODE_ERRORS:
        return {}


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    return "".join(char for char in value if char.isprintable()).strip() or None


def _timestamp(value: object) -> str | None:
    """ISO 8601 (no zone) from EXIF's "YYYY:MM:DD HH:MM:SS", or None if it is not that."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value.strip("\x00 "), "%Y:%m:%d %H:%M:%S").isoformat()
    except ValueError:
        return None


DISPLAYED_JPEG_QUALITY = 95
_MIME = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif", "BMP": "image/bmp",
         "TIFF": "image/tiff"}


def displayed(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[bytes, str]:
    """The image as it is displayed: pixels turned by its EXIF orientation, re-encoded in its own
    format (JPEG at quality 95 with the stored chroma subsampling; lossless formats stay lossless)
    with the orientation tag removed, so a viewer that ignores EXIF shows what one that honours it
    shows. Returns (bytes, MIME type). Memory: the file plus one decoded frame (≤ max_pixels)."""
    with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as image:
        if image.width * image.height > max_pixels:
            raise ImageRejectedError(f"{image.width}x{image.height} is over {max_pixels} pixels")
        fmt = image.format or "JPEG"
        options: dict = {}
        if fmt == "JPEG":
            options = {"quality": DISPLAYED_JPEG_QUALITY, "subsampling": JpegImagePlugin.get_sampling(image)}
        if image.info.get("icc_profile"):
            options["icc_profile"] = image.info["icc_profile"]
        turned = ImageOps.exif_transpose(image)
        exif = turned.getexif()
        exif.pop(_TAG_ORIENTATION, None)
        buffer = io.BytesIO()
        turned.save(buffer, fmt, exif=exif.tobytes(), **options)
    return buffer.getvalue(), _MIME.get(fmt, "application/octet-stream")

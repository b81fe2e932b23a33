"""Image extraction: `inspect(spool(...))` against its floor, and peak memory of one 50 MP image.

The floor is what any extractor must do per image: SHA-256 of the bytes, read the header,
decode in JPEG draft mode and thumbnail to 256. Images are photo-like (real photos resized,
with sensor-like grain) so JPEG and PNG sizes are realistic.
"""
from __future__ import annotations

import hashlib
import io
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from bench.harness import peak_memory
from chalicelib.imaging import THUMBNAIL_SIZE, inspect, spool

ROOT = Path(__file__).resolve().parent.parent
TESTDATA = ROOT / "tests" / "data"  # copies of ../shared/testdata (public domain / CC0, see its README)
PHOTOS = ("chelsea.png", "coffee.png", "rocket.jpg", "camera.png")
MIX = (  # (size, format, count): 24 images
    ((640, 480), "JPEG", 6),
    ((1920, 1080), "JPEG", 6),
    ((4000, 3000), "JPEG", 4),
    ((640, 480), "PNG", 4),
    ((1920, 1080), "PNG", 4),
)
BIG = (8160, 6120)  # 49.9 MP, a 50 MP sensor's frame
ROUNDS = 5
CHUNK = 64 * 1024  # as an S3 body's iter_chunks(65536) yields them
MEMORY_TARGET = "<= 300 MB"

_MAKE = """
import sys
from PIL import Image
width, height, photo, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
with Image.open(photo) as source:
    image = source.convert("RGB").resize((width, height), Image.Resampling.BICUBIC)
grain = Image.effect_noise((width, height), 20).convert("RGB")
Image.blend(image, grain, 0.12).save(path, quality=90, compress_level=1)
"""

# Peak RSS from VmHWM: a child's ru_maxrss on Linux also counts the parent it was forked from.
_INSPECT = """
import sys
from chalicelib.imaging import inspect, spool
def peak_mb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
before = peak_mb()
with open(sys.argv[1], "rb") as file:
    inspect(spool(iter(lambda: file.read(1 << 20), b"")))
print(before, peak_mb())
"""


def _photo_like(size: tuple[int, int], index: int) -> Image.Image:
    with Image.open(TESTDATA / PHOTOS[index % len(PHOTOS)]) as source:
        image = source.convert("RGB").resize(size, Image.Resampling.BICUBIC)
    grain = Image.effect_noise(size, 20).convert("RGB")
    return Image.blend(image, grain, 0.12)


def _mix() -> list[tuple[str, bytes]]:
    images = []
    for size, image_format, count in MIX:
        for index in range(count):
            buffer = io.BytesIO()
            _photo_like(size, index).save(buffer, image_format, quality=90, compress_level=6)
            images.append((f"{size[0]}x{size[1]} {image_format}", buffer.getvalue()))
    return images


def _floor(data: bytes) -> None:
    hashlib.sha256(data).hexdigest()
    with Image.open(io.BytesIO(data)) as image:
        image.draft("RGB", (THUMBNAIL_SIZE, THUMBNAIL_SIZE))
        image.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))


def _inspect(data: bytes) -> None:
    view = memoryview(data)
    inspect(spool(bytes(view[i:i + CHUNK]) for i in range(0, len(view), CHUNK)))


def _medians(images: list[tuple[str, bytes]]) -> dict[str, list[float]]:
    """Median seconds per image, by method; methods alternate image by image so drift hits both."""
    samples: dict[str, list[list[float]]] = {"floor": [[] for _ in images], "inspect": [[] for _ in images]}
    for _ in range(ROUNDS):
        for index, (_, data) in enumerate(images):
            for method, work in (("floor", _floor), ("inspect", _inspect)):
                started = time.perf_counter()
                work(data)
                samples[method][index].append(time.perf_counter() - started)
    return {method: [statistics.median(runs) for runs in per_image] for method, per_image in samples.items()}


def _make_big(directory: Path, image_format: str) -> Path:
    # In a child, so building 50 MP does not inflate this process's max RSS.
    path = directory / f"big.{image_format.lower()}"
    subprocess.run([sys.executable, "-c", _MAKE, str(BIG[0]), str(BIG[1]), str(TESTDATA / "coffee.png"), str(path)],
                   check=True)
    return path


def _memory_rows(path: Path, label: str) -> list[tuple[str, str, str]]:
    with path.open("rb") as file, peak_memory() as stats:
        inspect(spool(iter(lambda: file.read(1 << 20), b"")))
    child = subprocess.run([sys.executable, "-c", _INSPECT, str(path)], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split()
    baseline, peak = float(child[0]), float(child[1])
    size_mb = path.stat().st_size / 2**20
    return [
        (f"inspect {label} ({size_mb:.0f} MB file), fresh process max RSS",
         f"{peak:.0f} MB ({baseline:.0f} MB after imports)", MEMORY_TARGET),
        (f"inspect {label}, in-process peak",
         f"heap {stats['peak_heap_mb']:.0f} MB (tracemalloc), max RSS so far {stats['max_rss_mb']:.0f} MB", ""),
    ]


def run() -> list[tuple[str, str, str]]:
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        for image_format in ("JPEG", "PNG"):
            path = _make_big(Path(directory), image_format)
            rows.extend(_memory_rows(path, f"{BIG[0]}x{BIG[1]} {image_format}"))
            path.unlink()

    images = _mix()
    _inspect(images[0][1])  # plugin registration and first-call costs stay out of the figures
    medians = _medians(images)
    floor_rate = len(images) / sum(medians["floor"])
    inspect_rate = len(images) / sum(medians["inspect"])
    return [
        (f"floor: sha256 + header + draft decode + thumbnail ({len(images)}-image mix)",
         f"{floor_rate:.1f} images/s", ""),
        ("inspect(spool(...)) on the same mix", f"{inspect_rate:.1f} images/s", ""),
        ("inspect / floor", f"{inspect_rate / floor_rate:.2f}x", "goal >= 0.7x"),
        *_kind_rows(images, medians),
        *rows,
    ]


def _kind_rows(images: list[tuple[str, bytes]], medians: dict[str, list[float]]) -> list[tuple[str, str, str]]:
    rows = []
    for kind in dict.fromkeys(kind for kind, _ in images):
        indices = [index for index, (other, _) in enumerate(images) if other == kind]
        floor = sum(medians["floor"][index] for index in indices) / len(indices)
        extracted = sum(medians["inspect"][index] for index in indices) / len(indices)
        rows.append((f"  {kind}: inspect vs floor, per image",
                     f"{extracted * 1000:.1f} vs {floor * 1000:.1f} ms ({floor / extracted:.2f}x)", ""))
    return rows

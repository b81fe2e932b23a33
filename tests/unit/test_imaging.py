"""Image facts from untrusted bytes: real photos, every pixel mode, EXIF, rejections, pHash, spooling."""
from __future__ import annotations

import hashlib
import io
import math
import random
import struct
import zlib

import pytest
from PIL import Image, ImageFile, PngImagePlugin

from chalicelib.errors import ImageRejectedError
from chalicelib.imaging import (
    ALLOWED_FORMATS, DEFAULT_MAX_PIXELS, THUMBNAIL_SIZE, ImageFacts, inspect, spool,
)
from chalicelib.services.images import hamming
from chalicelib.services.paths import is_image_key
from tests.conftest import TESTDATA

PHOTOS = {  # file: (format, mime type, width, height)
    "brick.png": ("PNG", "image/png", 512, 512),
    "camera.png": ("PNG", "image/png", 512, 512),
    "chelsea.png": ("PNG", "image/png", 451, 300),
    "coffee.png": ("PNG", "image/png", 600, 400),
    "rocket.jpg": ("JPEG", "image/jpeg", 640, 427),
}
WHITE, RED, BLUE = (255, 255, 255), (255, 0, 0), (0, 0, 255)


def encoded(image: Image.Image, image_format: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **params)
    return buffer.getvalue()


def facts_of(data: bytes, **options) -> ImageFacts:
    return inspect(spool([data]), **options)


def photo(name: str) -> Image.Image:
    with Image.open(TESTDATA / name) as image:
        return image.convert("RGB")


def thumbnail_of(facts: ImageFacts) -> Image.Image:
    thumbnail = Image.open(io.BytesIO(facts.thumbnail))
    assert thumbnail.format == "JPEG" and thumbnail.mode == "RGB"
    return thumbnail


def near(colour: tuple[int, ...], expected: tuple[int, int, int], tolerance: int = 40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(colour, expected))


def halves(size: tuple[int, int], left: tuple[int, int, int], right: tuple[int, int, int]) -> Image.Image:
    image = Image.new("RGB", size, right)
    image.paste(left, (0, 0, size[0] // 2, size[1]))
    return image


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a size in its header, with one empty IDAT: the shape of a forged bomb."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


# Real photos


@pytest.mark.parametrize("name", sorted(PHOTOS))
def test_real_photos_report_format_size_hash_and_a_jpeg_thumbnail(name):
    data = (TESTDATA / name).read_bytes()
    image_format, mime_type, width, height = PHOTOS[name]

    facts = facts_of(data)

    assert (facts.format, facts.mime_type, facts.width, facts.height) == (image_format, mime_type, width, height)
    assert facts.sha256 == hashlib.sha256(data).hexdigest()
    assert facts.frames == 1
    thumbnail = thumbnail_of(facts)
    assert max(thumbnail.size) == THUMBNAIL_SIZE
    assert thumbnail.width * height == pytest.approx(thumbnail.height * width, abs=max(width, height))


def test_an_image_smaller_than_the_thumbnail_is_not_enlarged():
    data = encoded(photo("chelsea.png").resize((120, 80)), "PNG")

    assert thumbnail_of(facts_of(data)).size == (120, 80)


def test_thumbnail_size_is_honoured():
    facts = facts_of((TESTDATA / "rocket.jpg").read_bytes(), thumbnail_size=64)

    assert thumbnail_of(facts).size == (64, 43)


def test_a_png_named_jpg_is_an_image_name_and_reports_its_real_format():
    data = encoded(photo("coffee.png"), "PNG")

    assert is_image_key("uploads/coffee.jpg")
    assert facts_of(data).format == "PNG"


@pytest.mark.parametrize("key, expected", [
    ("a/photo.jpg", True), ("a/PHOTO.JPEG", True), ("scan.Tiff", True), ("x.webp", True), ("y.gif", True),
    ("z.bmp", True), ("t.tif", True), ("p.PNG", True),
    ("notes.txt", False), ("photo.jpg.zip", False), ("folder.png/readme", False), ("jpg", False), ("", False),
])
def test_image_names_are_recognised_by_extension_in_any_case(key, expected):
    assert is_image_key(key) is expected


# EXIF


def test_orientation_6_swaps_width_and_height_and_rotates_the_thumbnail():
    # Given a 300x200 JPEG, red on its stored left half, that must be turned clockwise to display
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encoded(halves((300, 200), RED, BLUE), "JPEG", exif=exif, quality=95)

    facts = facts_of(data)

    # Then it is reported portrait and the stored left half is now on top
    assert (facts.width, facts.height) == (200, 300)
    assert facts.exif["orientation"] == 6
    thumbnail = thumbnail_of(facts)
    assert thumbnail.size == (171, 256)
    assert near(thumbnail.getpixel((85, 20)), RED) and near(thumbnail.getpixel((85, 235)), BLUE)


def test_camera_capture_time_and_gps_presence_are_read_back():
    exif = Image.Exif()
    exif[0x010F] = "  Canon\x00"
    exif[0x0110] = "Canon EOS R5 "
    exif[0x0132] = "2024:01:01 00:00:00"
    exif.get_ifd(0x8769)[0x9003] = "2023:06:15 08:30:05"
    exif.get_ifd(0x8825).update({1: "N", 2: (51.0, 30.0, 0.0), 3: "W", 4: (0.0, 7.0, 0.0)})
    data = encoded(photo("chelsea.png"), "JPEG", exif=exif)

    assert facts_of(data).exif == {"orientation": None, "make": "Canon", "model": "Canon EOS R5",
                                   "captured_at": "2023-06-15T08:30:05", "has_gps": True}


def test_capture_time_falls_back_to_datetime_and_a_gps_ifd_without_coordinates_is_no_gps():
    exif = Image.Exif()
    exif[0x0132] = "2024:02:29 23:59:59"
    exif.get_ifd(0x8769)[0x9003] = "    :  :     :  :  "
    exif.get_ifd(0x8825)[0] = b"\x02\x02\x00\x00"
    data = encoded(photo("chelsea.png"), "PNG", exif=exif)

    facts = facts_of(data)

    assert facts.exif["captured_at"] == "2024-02-29T23:59:59"
    assert facts.exif["has_gps"] is False


@pytest.mark.parametrize("value", ["not a date", "2023:13:45 25:61:00", "0000:00:00 00:00:00", ""])
def test_a_malformed_capture_time_reads_as_none(value):
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = value
    data = encoded(photo("chelsea.png"), "JPEG", exif=exif)

    assert facts_of(data).exif["captured_at"] is None


@pytest.mark.parametrize("orientation", [0, 9, 300])
def test_an_out_of_range_orientation_is_none_and_leaves_the_image_as_stored(orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encoded(Image.new("RGB", (300, 200), RED), "JPEG", exif=exif)

    facts = facts_of(data)

    assert facts.exif["orientation"] is None
    assert (facts.width, facts.height) == (300, 200)


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_corrupt_exif_does_not_reject_a_good_image():
    data = encoded(photo("chelsea.png"), "JPEG", exif=b"Exif\x00\x00MM\x00\x2a\xff\xff\xff\xff garbage")

    facts = facts_of(data)

    assert (facts.width, facts.height) == (451, 300)
    assert facts.exif == {"orientation": None, "make": None, "model": None, "captured_at": None, "has_gps": False}


# Pixel modes and formats


def test_transparent_rgba_is_composited_onto_white():
    image = Image.new("RGBA", (400, 300), (0, 0, 0, 0))
    image.paste((255, 0, 0, 255), (0, 0, 200, 300))

    thumbnail = thumbnail_of(facts_of(encoded(image, "PNG")))

    assert near(thumbnail.getpixel((20, 96)), RED) and near(thumbnail.getpixel((236, 96)), WHITE)


def test_a_palette_image_with_a_transparent_index_is_composited_onto_white():
    image = Image.new("P", (400, 300), 1)
    image.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    image.paste(0, (0, 0, 200, 300))
    data = encoded(image, "PNG", transparency=0)

    thumbnail = thumbnail_of(facts_of(data))

    assert near(thumbnail.getpixel((20, 96)), WHITE) and near(thumbnail.getpixel((236, 96)), BLUE)


def test_a_large_rgba_image_goes_through_the_strip_path_unchanged_in_meaning():
    # Given an RGBA image big enough to be reduced in several strips
    image = halves((4000, 1500), RED, BLUE).convert("RGBA")
    image.paste((0, 0, 0, 0), (0, 0, 4000, 500))

    thumbnail = thumbnail_of(facts_of(encoded(image, "PNG", compress_level=1)))

    assert thumbnail.size == (256, 96)
    assert near(thumbnail.getpixel((64, 10)), WHITE) and near(thumbnail.getpixel((64, 80)), RED)
    assert near(thumbnail.getpixel((192, 80)), BLUE)


@pytest.fixture(scope="module")
def cat_phash() -> str:
    return facts_of((TESTDATA / "chelsea.png").read_bytes()).phash


@pytest.mark.parametrize("mode, image_format, params", [
    ("CMYK", "JPEG", {}),
    ("L", "JPEG", {}),
    ("1", "PNG", {}),
    ("1", "BMP", {}),
    ("I;16", "PNG", {}),
    ("I;16", "TIFF", {}),
    ("I", "TIFF", {}),
    ("F", "TIFF", {}),
    ("LA", "PNG", {}),
    ("RGB", "WEBP", {"quality": 90}),
    ("RGBA", "WEBP", {"quality": 90}),
    ("RGB", "TIFF", {"compression": "tiff_lzw"}),
    ("P", "GIF", {}),
    ("P", "BMP", {}),
])
def test_every_pixel_mode_gives_an_rgb_thumbnail_and_the_same_picture(mode, image_format, params, cat_phash):
    # Given the cat, stored in a mode and format
    source = photo("chelsea.png")
    if mode == "I;16":
        stored = source.convert("L").convert("I").point(lambda value: value * 257).convert("I;16")
    elif mode in ("I", "F"):
        stored = source.convert("L").convert(mode)
    else:
        stored = source.convert(mode)
    data = encoded(stored, image_format, **params)

    facts = facts_of(data)

    # Then the format is the real one and the picture is still the cat, by its pHash
    assert (facts.format, facts.width, facts.height) == (image_format, 451, 300)
    assert thumbnail_of(facts).size == (256, 170)
    assert hamming(facts.phash, cat_phash) <= 8


def test_sixteen_bit_grey_is_scaled_to_eight_bits_not_clipped():
    data = encoded(Image.new("I;16", (300, 200), 32896), "PNG")

    thumbnail = thumbnail_of(facts_of(data))

    assert near(thumbnail.getpixel((150, 85)), (128, 128, 128), tolerance=3)


@pytest.mark.parametrize("image_format", ["GIF", "WEBP"])
def test_an_animation_counts_its_frames_and_shows_the_first(image_format):
    frames = [Image.new("RGB", (200, 100), colour) for colour in (RED, BLUE, WHITE)]
    data = encoded(frames[0], image_format, save_all=True, append_images=frames[1:], duration=100, loop=0)

    facts = facts_of(data)

    assert (facts.format, facts.frames) == (image_format, 3)
    assert near(thumbnail_of(facts).getpixel((100, 50)), RED)


def test_a_multi_picture_jpeg_is_reported_as_jpeg():
    data = encoded(photo("chelsea.png"), "MPO", save_all=True, append_images=[photo("coffee.png")])

    facts = facts_of(data)

    assert (facts.format, facts.mime_type, facts.width, facts.frames) == ("JPEG", "image/jpeg", 451, 2)


# Rejections


def rejection(data: bytes, **options) -> str:
    with pytest.raises(ImageRejectedError) as caught:
        facts_of(data, **options)
    return caught.value.message


def test_zero_bytes_are_rejected():
    assert rejection(b"") == "empty file (0 bytes)"


def test_text_named_jpg_is_rejected_as_not_an_image():
    reason = rejection(b"Dear diary, today I took no photos.\n")

    assert reason == "not a recognised image format (allowed: JPEG, PNG, WEBP, GIF, BMP, TIFF)"


@pytest.mark.parametrize("image_format", ["ICO", "PCX", "TGA", "PPM"])
def test_formats_outside_the_allowed_list_are_rejected(image_format):
    assert image_format not in ALLOWED_FORMATS
    data = encoded(photo("chelsea.png").resize((64, 48)), image_format)

    assert rejection(data).startswith("not a recognised image format")


def test_a_truncated_jpeg_is_rejected():
    data = (TESTDATA / "rocket.jpg").read_bytes()

    reason = rejection(data[: len(data) // 2])

    assert reason.startswith("truncated or corrupt image data: ")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_a_png_with_a_broken_idat_is_rejected():
    data = bytearray(encoded(photo("coffee.png"), "PNG"))
    start = data.index(b"IDAT") + 100
    data[start:start + 64] = bytes(64)

    assert rejection(bytes(data)).startswith("truncated or corrupt image data: ")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_a_ten_thousand_square_one_bit_png_is_a_bomb_under_the_default_limit():
    # Given 100 MP that compress to a few kilobytes
    data = encoded(Image.new("1", (10_000, 10_000)), "PNG")
    assert len(data) < 100_000

    reason = rejection(data)

    assert reason == "image is 10000x10000 = 100.0 MP, over the 50.0 MP limit (decompression bomb guard)"
    assert DEFAULT_MAX_PIXELS == 50_000_000


def test_the_pixel_limit_is_inclusive_and_configurable():
    data = encoded(Image.new("P", (1000, 1000)), "PNG")

    assert facts_of(data, max_pixels=1_000_000).width == 1000
    assert rejection(data, max_pixels=999_999) == (
        "image is 1000x1000 = 1.0 MP, over the 1.0 MP limit (decompression bomb guard)")


def test_pillows_own_bomb_error_is_a_rejection_too():
    # Given a header claiming 400 MP and a caller who allows more than Pillow ever will
    reason = rejection(png_header_only(20_000, 20_000), max_pixels=10**9)

    assert reason.startswith("image is too large to decode (decompression bomb guard): ")


def test_a_header_claiming_a_size_its_data_does_not_have_is_rejected():
    assert rejection(png_header_only(3000, 2000)).startswith("truncated or corrupt image data: ")


def png_with_a_text_bomb() -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "a" * 2_000_000, zip=True)
    return encoded(Image.new("RGB", (10, 10)), "PNG", pnginfo=info)


def tiff_whose_second_page_has_no_width() -> bytes:
    page = Image.new("RGB", (10, 10))
    data = bytearray(encoded(page, "TIFF", save_all=True, append_images=[page]))
    first = struct.unpack_from("<I", data, 4)[0]
    second = struct.unpack_from("<I", data, first + 2 + 12 * struct.unpack_from("<H", data, first)[0])[0]
    for entry in range(struct.unpack_from("<H", data, second)[0]):
        at = second + 2 + 12 * entry
        if struct.unpack_from("<H", data, at)[0] == 256:  # ImageWidth
            struct.pack_into("<H", data, at, 0x9999)
    return bytes(data)


@pytest.mark.parametrize("build, pillow_error", [(png_with_a_text_bomb, ValueError),
                                                 (tiff_whose_second_page_has_no_width, TypeError)])
def test_corruption_pillow_reports_as_other_exceptions_is_a_rejection_too(build, pillow_error):
    # Given bytes on which Pillow itself raises something other than OSError
    data = build()
    with pytest.raises(pillow_error):
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            image.seek(image.n_frames - 1)

    assert rejection(data).startswith("truncated or corrupt image data: ")


def test_mangled_bytes_give_facts_or_a_rejection_and_nothing_else():
    # Given every allowed format, each mangled a hundred ways with a fixed seed
    source = photo("chelsea.png").resize((90, 60))
    seeds = [encoded(source, "JPEG"), encoded(source, "PNG"), encoded(source.convert("P"), "GIF"),
             encoded(source, "TIFF"), encoded(source, "BMP"), encoded(source, "WEBP")]
    rng = random.Random(20261121)
    outcomes = set()
    for seed in seeds:
        for _ in range(100):
            data = bytearray(seed)
            for _ in range(rng.randint(1, 6)):
                position = rng.randrange(len(data))
                if rng.random() < 0.7:
                    data[position] = rng.randrange(256)
                else:
                    del data[position:position + rng.randint(1, 40)]
            try:
                facts_of(bytes(data))
                outcomes.add("facts")
            except ImageRejectedError as exc:
                assert exc.message
                outcomes.add("rejected")

    assert outcomes == {"facts", "rejected"}


# Perceptual hash


def reference_phash(image: Image.Image) -> str:
    """The imagehash.phash definition written out: a full, naive 32x32 DCT-II."""
    pixels = list(image.convert("L").resize((32, 32), Image.Resampling.LANCZOS).tobytes())
    cos = [[math.cos(math.pi * k * (2 * n + 1) / 64) for n in range(32)] for k in range(32)]
    dct = [[sum(pixels[y * 32 + x] * cos[u][y] * cos[v][x] for y in range(32) for x in range(32))
            for v in range(32)] for u in range(32)]
    low = [dct[u][v] for u in range(8) for v in range(8)]
    ordered = sorted(low)
    median = (ordered[31] + ordered[32]) / 2
    return "".join("1" if value > median else "0" for value in low)


@pytest.mark.parametrize("name, size", [("chelsea.png", (200, 133)), ("camera.png", (160, 160))])
def test_phash_equals_a_naive_full_dct_reference(name, size):
    # Given an image under the thumbnail size, so the hashed image is the image itself
    with Image.open(TESTDATA / name) as original:
        image = original.resize(size, Image.Resampling.LANCZOS)

    facts = facts_of(encoded(image, "PNG"))

    assert f"{int(facts.phash, 16):064b}" == reference_phash(image)


def test_phash_is_stable_across_re_encoding_and_resizing():
    cat = photo("chelsea.png")
    as_png = facts_of(encoded(cat, "PNG")).phash

    as_jpeg = facts_of(encoded(cat, "JPEG", quality=95)).phash
    smaller = facts_of(encoded(cat.resize((406, 270), Image.Resampling.LANCZOS), "PNG")).phash

    assert len(as_png) == 16 and as_png == as_png.lower()
    assert hamming(as_png, as_jpeg) <= 4
    assert hamming(as_png, smaller) <= 4


@pytest.mark.parametrize("a, b", [("chelsea.png", "camera.png"), ("coffee.png", "brick.png"),
                                  ("rocket.jpg", "chelsea.png")])
def test_phash_tells_different_photos_apart(a, b):
    first = facts_of((TESTDATA / a).read_bytes()).phash
    second = facts_of((TESTDATA / b).read_bytes()).phash

    assert hamming(first, second) > 16


@pytest.mark.parametrize("a, b, distance", [
    ("0000000000000000", "0000000000000000", 0),
    ("0000000000000000", "ffffffffffffffff", 64),
    ("8000000000000000", "0000000000000000", 1),
    ("00000000000000ff", "000000000000000f", 4),
    ("a5a5a5a5a5a5a5a5", "5a5a5a5a5a5a5a5a", 64),
    ("c0371bec1be51267", "C0371BEC1BE51266", 1),
])
def test_hamming_counts_differing_bits(a, b, distance):
    assert hamming(a, b) == distance


@pytest.mark.parametrize("a, b", [("00", "000"), ("zz", "00")])
def test_hamming_refuses_what_is_not_a_pair_of_hashes(a, b):
    with pytest.raises(ValueError):
        hamming(a, b)


# Spooling


def test_spool_keeps_small_streams_in_memory_and_hashes_them():
    chunks = [b"abc", b"", b"def"]

    spooled = spool(chunks, memory_limit=1024)

    assert (spooled.size, spooled.sha256) == (6, hashlib.sha256(b"abcdef").hexdigest())
    assert spooled.file._rolled is False
    assert spooled.file.read() == b"abcdef"


def test_spool_rolls_to_disk_past_its_memory_limit():
    chunks = [bytes([i]) * 1000 for i in range(10)]

    spooled = spool(chunks, memory_limit=4096)

    assert spooled.file._rolled is True
    assert spooled.file.tell() == 0
    assert spooled.file.read() == b"".join(chunks)
    assert (spooled.size, spooled.sha256) == (10_000, hashlib.sha256(b"".join(chunks)).hexdigest())


def test_spool_of_nothing_is_empty():
    spooled = spool(iter(()))

    assert (spooled.size, spooled.sha256) == (0, hashlib.sha256(b"").hexdigest())


def test_inspect_reads_a_rolled_spool_and_leaves_it_open_at_the_start():
    data = (TESTDATA / "rocket.jpg").read_bytes()
    spooled = spool([data[i:i + 8192] for i in range(0, len(data), 8192)], memory_limit=16_384)

    facts = inspect(spooled)

    assert spooled.file._rolled is True
    assert (facts.width, facts.sha256) == (640, hashlib.sha256(data).hexdigest())
    assert not spooled.file.closed and spooled.file.tell() == 0
    assert spooled.file.read() == data


def test_the_mime_types_served_inline_are_the_ones_inspection_reports():
    from chalicelib import imaging
    from chalicelib.services.images import VERIFIED_MIME_TYPES

    assert VERIFIED_MIME_TYPES == set(imaging._MIME_TYPES.values())

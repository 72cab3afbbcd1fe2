"""Small photos made on the spot, with the EXIF a phone writes: where (GPS), when, which phone, a comment."""

from __future__ import annotations

import io

from PIL import Image

PHONE_MODEL = "GridPhone X9 Secret"
COMMENT = b"shot by worker 0417 at home"
TAKEN = "2026:11:30 10:12:13"
# 39°06'54" N, 117°06'18" E: inside grid NW of the tiny district (117.105, 39.115).
GPS_NW = {1: "N", 2: (39.0, 6.0, 54.0), 3: "E", 4: (117.0, 6.0, 18.0)}
GPS_NW_POINT = (117.105, 39.115)


def exif(*, gps: dict | None = GPS_NW, taken: str | None = TAKEN, orientation: int = 1) -> Image.Exif:
    """Return EXIF as a phone writes it."""
    data = Image.Exif()
    data[0x010F] = "GridPhone"  # Make
    data[0x0110] = PHONE_MODEL  # Model
    data[0x0112] = orientation
    if taken:
        data.get_ifd(0x8769)[0x9003] = taken  # DateTimeOriginal
    if gps:
        data.get_ifd(0x8825).update(gps)
    return data


def jpeg(size=(640, 480), colour=(40, 120, 200), **kwargs) -> bytes:
    """Return a JPEG with phone EXIF and a comment."""
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "JPEG", exif=exif(**kwargs), comment=COMMENT, quality=90)
    return buffer.getvalue()


def heic(size=(640, 480), **kwargs) -> bytes:
    """Return an HEIC (what an iPhone sends) with phone EXIF."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 80, 40)).save(buffer, "HEIF", exif=exif(**kwargs).tobytes())
    return buffer.getvalue()


def png(size=(320, 200), alpha=True) -> bytes:
    """Return a PNG (a screenshot), transparent when asked."""
    buffer = io.BytesIO()
    Image.new("RGBA" if alpha else "RGB", size, (10, 20, 30, 0) if alpha else (10, 20, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def webp(size=(320, 200)) -> bytes:
    """Return a WebP."""
    buffer = io.BytesIO()
    Image.new("RGB", size, (90, 160, 40)).save(buffer, "WEBP", exif=exif())
    return buffer.getvalue()

"""Photos as sent from a phone: decoded for real (never trusted by name), EXIF time and GPS read, and the
copies that are served made without any metadata.

What is served is re-encoded from the decoded pixels: a display copy (long side ≤ 2,000 px) and a thumbnail
(≤ 320 px), turned upright by the EXIF orientation and converted to sRGB, with no EXIF, XMP, comment or
ICC profile, so neither the place a photo was taken nor the phone that took it reaches a viewer. The bytes as
sent are kept too (never served), with their SHA-256, as the evidence.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import logging
import math
import threading
from dataclasses import dataclass

from gridmap.errors import GridmapError, InvalidInput

# Pillow's format names → the type of the file as sent. MPO is the JPEG variant many phones write (a second
# image for depth or a preview follows the first); HEIF covers the iPhone's HEIC.
ACCEPTED = {"JPEG": "image/jpeg", "MPO": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "HEIF": "image/heic"}
ACCEPTED_NAMES = "JPEG, PNG, WebP or HEIC"
_OPENERS = ["JPEG", "PNG", "WEBP", "HEIF"]  # Pillow opens MPO through its JPEG opener
MAX_PIXELS = 80_000_000  # 48–64 MP phone photos pass; 108/200 MP "full resolution" modes are refused
# 2,000 px is plenty to see on any screen, and it is half of a 12 MP phone photo's 4,000 px (a quarter of 48 MP):
# the JPEG decoder scales by exactly that while decoding, which leaves almost no resizing to do.
DISPLAY_SIDE = 2000
THUMB_SIDE = 320
DISPLAY_QUALITY, THUMB_QUALITY = 85, 80
# Decoding a 48 MP photo takes ~150 MB; at most two at once keeps a busy 2-core server's memory bounded.
_DECODING = threading.BoundedSemaphore(2)
_heif_registered = False
_register_lock = threading.Lock()

log = logging.getLogger(__name__)
_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
_DATETIME, _DATETIME_ORIGINAL, _OFFSET_ORIGINAL = 0x0132, 0x9003, 0x9011


class TooLarge(GridmapError):
    """An upload over a size limit (HTTP 413)."""

    status = 413


@dataclass(frozen=True)
class Photo:
    """A checked photo: the bytes as sent, the stripped copies that are served, and what its EXIF said."""

    filename: str
    original: bytes
    original_type: str
    display: bytes
    display_type: str
    width: int
    height: int
    thumb: bytes
    taken_at: dt.datetime | None
    gps_lon: float | None
    gps_lat: float | None

    @property
    def original_sha256(self) -> str:
        """SHA-256 of the bytes as sent."""
        return sha256(self.original)


def sha256(data: bytes) -> str:
    """Return the hex SHA-256 of some bytes."""
    return hashlib.sha256(data).hexdigest()


def _register_heif() -> None:
    global _heif_registered
    with _register_lock:
        if not _heif_registered:
            import pillow_heif

            pillow_heif.register_heif_opener()
            _heif_registered = True


def read_photo(data: bytes, *, filename: str, max_bytes: int) -> Photo:
    """Decode a photo, read its EXIF time and GPS, and make the display copy and thumbnail without metadata."""
    from PIL import Image, UnidentifiedImageError

    name = clean_filename(filename)
    if not data:
        raise InvalidInput(f"photo {name!r} is empty")
    if len(data) > max_bytes:
        raise TooLarge(f"photo {name!r} is {len(data) / 1e6:.1f} MB; at most {max_bytes / 1e6:g} MB each")
    _register_heif()
    with _DECODING:
        try:
            image = Image.open(io.BytesIO(data), formats=_OPENERS)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise InvalidInput(f"photo {name!r} has more than {MAX_PIXELS // 1_000_000} megapixels") from None
        except UnidentifiedImageError:
            raise InvalidInput(f"{name!r} is not a {ACCEPTED_NAMES} image, whatever its name says") from None
        except Exception:  # a damaged header: Pillow raises many kinds (and warns, which tests turn into errors)
            log.info("photo %r: unreadable header", name, exc_info=True)
            raise InvalidInput(f"{name!r} is not a {ACCEPTED_NAMES} image, whatever its name says") from None
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise InvalidInput(
                f"photo {name!r} has {width * height / 1e6:.0f} megapixels; at most {MAX_PIXELS // 1_000_000}"
            )
        original_type = ACCEPTED[image.format]
        try:
            if image.format in ("JPEG", "MPO"):
                # Let the JPEG decoder scale by 1/2…1/8 while decoding: every block is still read (a damaged
                # file fails) but a 48 MP photo takes a sixteenth of the memory.
                image.draft("RGB", (DISPLAY_SIDE, DISPLAY_SIDE))
            image.load()
            taken_at, gps_lon, gps_lat = exif_facts(image)
            clean = _clean_copy(image)
            display, display_type = _encode_display(clean)
            size = clean.size
            thumb = _thumbnail(clean)
        except Exception:  # hostile or broken input: whatever fails in decoding it, the photo is refused
            log.info("photo %r: cannot be decoded", name, exc_info=True)
            raise InvalidInput(f"photo {name!r} is damaged or incomplete: it cannot be decoded") from None
    return Photo(
        filename=name,
        original=data,
        original_type=original_type,
        display=display,
        display_type=display_type,
        width=size[0],
        height=size[1],
        thumb=thumb,
        taken_at=taken_at,
        gps_lon=gps_lon,
        gps_lat=gps_lat,
    )


def clean_filename(filename: str | None) -> str:
    """Return a file name fit to show: no folders, no control characters, at most 120 characters."""
    base = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip()
    return base[:120] or "photo"


# ---- EXIF ------------------------------------------------------------------------------------------------
def exif_facts(image) -> tuple[dt.datetime | None, float | None, float | None]:
    """Return (taken_at, lon, lat) from a decoded image's EXIF; None for what is missing or nonsense."""
    try:
        exif = image.getexif()
        facts = exif.get_ifd(_EXIF_IFD)
        gps = exif.get_ifd(_GPS_IFD)
    except Exception:  # a damaged EXIF block must not refuse an otherwise good photo
        return None, None, None
    taken = _exif_time(facts.get(_DATETIME_ORIGINAL) or exif.get(_DATETIME), facts.get(_OFFSET_ORIGINAL))
    lon, lat = _exif_gps(gps)
    return taken, lon, lat


def _exif_time(value, offset) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.strptime(value.strip("\x00 ")[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None  # "0000:00:00 00:00:00" and worse are common
    if isinstance(offset, str):
        try:
            zone = dt.datetime.strptime(offset.strip("\x00 "), "%z").tzinfo
        except ValueError:
            zone = None
        if zone is not None:
            # Cases keep the server's local time; a photo taken in another zone is shown in that time too.
            moment = moment.replace(tzinfo=zone).astimezone().replace(tzinfo=None)
    return moment


def _degrees(value) -> float | None:
    try:
        d, m, s = (float(part) for part in value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    total = d + m / 60 + s / 3600
    return total if math.isfinite(total) else None


def _exif_gps(gps) -> tuple[float | None, float | None]:
    """Return (lon, lat) in WGS84 from an EXIF GPS block (phones write GPS as WGS84)."""
    lat, lon = _degrees(gps.get(2)), _degrees(gps.get(4))
    if lat is None or lon is None:
        return None, None
    if str(gps.get(1, "N")).strip("\x00 ").upper() == "S":
        lat = -lat
    if str(gps.get(3, "E")).strip("\x00 ").upper() == "W":
        lon = -lon
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or (lat == 0 and lon == 0):
        return None, None  # (0, 0) is what a phone without a fix writes
    return round(lon, 7), round(lat, 7)


# ---- what is served ---------------------------------------------------------------------------------------
def _srgb(image):
    """Return the image in sRGB (RGB or RGBA), converted by its embedded colour profile when it has one."""
    from PIL import ImageCms

    alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    mode = "RGBA" if alpha else "RGB"
    icc = image.info.get("icc_profile")
    converted = image if image.mode == mode else image.convert(mode)
    if icc and image.mode in ("RGB", "RGBA"):
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(converted, source, ImageCms.createProfile("sRGB"), outputMode=mode)
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # a broken profile: the pixels as they are beat refusing the photo
    return converted


def _encode(image, kind: str, quality: int) -> bytes:
    image.info = {}  # Pillow would copy a comment or colour profile from here into the file
    buffer = io.BytesIO()
    if kind == "PNG":
        image.save(buffer, format="PNG", optimize=False)
    else:
        image.save(buffer, format="JPEG", quality=quality, progressive=True)
    return buffer.getvalue()


def _clean_copy(image):
    """Return the pixels to serve: upright (EXIF orientation), sRGB, long side ≤ 2,000 px."""
    from PIL import Image, ImageOps

    ImageOps.exif_transpose(image, in_place=True)
    clean = _srgb(image)
    # reducing_gap: halve by box averaging first (fast), then Lanczos over the little that is left.
    clean.thumbnail((DISPLAY_SIDE, DISPLAY_SIDE), Image.Resampling.LANCZOS, reducing_gap=1.0)
    return clean


def _encode_display(clean) -> tuple[bytes, str]:
    """Return (bytes, content type) of the display copy: transparent images stay PNG, photos become JPEG."""
    kind = "PNG" if clean.mode == "RGBA" else "JPEG"
    return _encode(clean.copy(), kind, DISPLAY_QUALITY), f"image/{kind.lower()}"


def _thumbnail(clean) -> bytes:
    """Return a JPEG of at most 320 px a side, transparency flattened onto white."""
    from PIL import Image

    image = clean.copy()
    image.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.LANCZOS)
    if image.mode != "RGB":
        flat = Image.new("RGB", image.size, (255, 255, 255))
        flat.paste(image, mask=image.getchannel("A") if "A" in image.getbands() else None)
        image = flat
    return _encode(image, "JPEG", THUMB_QUALITY)

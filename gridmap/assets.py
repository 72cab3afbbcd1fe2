"""Browser assets (Leaflet and friends) that gridmap serves itself, so maps work with no internet.

`python -m gridmap.assets install` runs `npm ci` on the repository's package.json / package-lock.json in a
cache directory outside the package and copies exactly the files listed in `VENDOR_FILES` into
gridmap/static/vendor/ (git-ignored: third-party code is installed, never committed or hand-copied).

folium points every map at public CDNs; `use_local_assets()` swaps its class-level (name, url) lists for
local URLs (keeping folium's names, which de-duplicate script tags), `check_offline()` refuses HTML that
still loads a script or stylesheet over the network, and `inline_assets()` turns the local references into
inline <script>/<style> blocks for a file that opens with no server at all.
"""

from __future__ import annotations

import base64
import hashlib
import json
import mimetypes
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from gridmap.errors import ConfigError, GridmapError

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
VENDOR_DIR = PACKAGE_DIR / "static" / "vendor"
VENDOR_URL = "/static/vendor/"
MANIFEST = "manifest.json"
NPM_FILES = ("package.json", "package-lock.json", ".npmrc")

# Every file gridmap serves, as a path inside node_modules; copied to vendor/ under the same path so the
# relative url()s inside stylesheets (Leaflet's images, Font Awesome's fonts) keep working.
VENDOR_FILES = (
    "leaflet/dist/leaflet.js",
    "leaflet/dist/leaflet.css",
    "leaflet/dist/images/layers.png",
    "leaflet/dist/images/layers-2x.png",
    "leaflet/dist/images/marker-icon.png",
    "leaflet/dist/images/marker-icon-2x.png",
    "leaflet/dist/images/marker-shadow.png",
    "leaflet/LICENSE",
    "supercluster/dist/supercluster.min.js",
    "supercluster/LICENSE",
    "leaflet.heat/dist/leaflet-heat.js",
    "leaflet.heat/LICENSE",
    "jquery/dist/jquery.min.js",
    "jquery/LICENSE.txt",
    "bootstrap/dist/js/bootstrap.bundle.min.js",
    "bootstrap/dist/css/bootstrap.min.css",
    "bootstrap/LICENSE",
    "leaflet.awesome-markers/dist/leaflet.awesome-markers.min.js",
    "leaflet.awesome-markers/dist/leaflet.awesome-markers.css",
    "leaflet.awesome-markers/dist/images/markers-soft.png",
    "leaflet.awesome-markers/dist/images/markers-soft@2x.png",
    "leaflet.awesome-markers/dist/images/markers-shadow.png",
    "leaflet.awesome-markers/dist/images/markers-shadow@2x.png",
    "leaflet.awesome-markers/LICENSE",
    "@fortawesome/fontawesome-free/css/all.min.css",
    "@fortawesome/fontawesome-free/webfonts/fa-brands-400.woff2",
    "@fortawesome/fontawesome-free/webfonts/fa-regular-400.woff2",
    "@fortawesome/fontawesome-free/webfonts/fa-solid-900.woff2",
    "@fortawesome/fontawesome-free/webfonts/fa-v4compatibility.woff2",
    "@fortawesome/fontawesome-free/LICENSE.txt",
    # The planner's editor (plans page): snapping, vertex editing and drawing.
    "@geoman-io/leaflet-geoman-free/dist/leaflet-geoman.js",
    "@geoman-io/leaflet-geoman-free/dist/leaflet-geoman.css",
    "@geoman-io/leaflet-geoman-free/LICENSE",
    # The report form reads a chosen photo's EXIF time and GPS in the browser, before anything is sent.
    "exifr/dist/lite.umd.js",
    "exifr/LICENSE",
    # The dashboard's charts (Apache ECharts, drawn as SVG in the browser from /api/dashboard).
    "echarts/dist/echarts.min.js",
    "echarts/LICENSE",
)

# folium's names → local files. folium's glyphicons (Bootstrap 3) and its awesome-rotate stylesheet have no
# npm package; they only matter for rotated awesome-marker icons with the glyphicon prefix, so they are
# left out (check_offline() would catch a map that still asked for them).
FOLIUM_JS = {
    "leaflet": "leaflet/dist/leaflet.js",
    "jquery": "jquery/dist/jquery.min.js",
    "bootstrap": "bootstrap/dist/js/bootstrap.bundle.min.js",
    "awesome_markers": "leaflet.awesome-markers/dist/leaflet.awesome-markers.min.js",
}
FOLIUM_CSS = {
    "leaflet_css": "leaflet/dist/leaflet.css",
    "bootstrap_css": "bootstrap/dist/css/bootstrap.min.css",
    "awesome_markers_font_css": "@fortawesome/fontawesome-free/css/all.min.css",
    "awesome_markers_css": "leaflet.awesome-markers/dist/leaflet.awesome-markers.css",
}
# Plugins gridmap uses, under the names folium gives them.
PLUGIN_JS = {
    "supercluster": "supercluster/dist/supercluster.min.js",
    "leaflet-heat.js": "leaflet.heat/dist/leaflet-heat.js",
}

_REMOTE = re.compile(r"^\s*(?:https?:)?//", re.I)
_SCRIPT_SRC = re.compile(r"<script\b[^>]*?\bsrc\s*=\s*[\"']?([^\"'\s>]+)", re.I)
_LINK_TAG = re.compile(r"<link\b[^>]*>", re.I)
_HREF = re.compile(r"\bhref\s*=\s*[\"']?([^\"'\s>]+)", re.I)
_CSS_IMPORT = re.compile(r"@import\s+(?:url\()?\s*[\"']?([^\"')\s;]+)", re.I)


class AssetsMissing(ConfigError):
    """The vendor files are not installed."""


class OnlineAssetError(GridmapError):
    """Rendered HTML would fetch a script or stylesheet from the network."""


def _vendor_url(base_url: str, path: str) -> str:
    return base_url.rstrip("/") + "/" + path


def folium_assets(base_url: str = VENDOR_URL) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Return folium's default (name, url) lists for JS and CSS, pointing at the local copies."""
    js = [(name, _vendor_url(base_url, path)) for name, path in FOLIUM_JS.items()]
    css = [(name, _vendor_url(base_url, path)) for name, path in FOLIUM_CSS.items()]
    return js, css


def plugin_js(name: str, base_url: str = VENDOR_URL) -> tuple[str, str]:
    """Return the (name, url) of a plugin script gridmap ships."""
    return name, _vendor_url(base_url, PLUGIN_JS[name])


def use_local_assets(base_url: str = VENDOR_URL) -> None:
    """Point folium's maps and the plugins gridmap uses at the local copies, for every map made afterwards.

    folium keeps these lists on the classes, so this is process-wide by design (call it at start-up or
    before building a map; it is idempotent).
    """
    import folium
    from folium import plugins

    js, css = folium_assets(base_url)
    folium.Map.default_js = js
    folium.Map.default_css = css
    plugins.HeatMap.default_js = [plugin_js("leaflet-heat.js", base_url)]


def check_offline(html: str) -> str:
    """Return the HTML unchanged, or raise if any script or stylesheet would be fetched over http(s)."""
    remote = [src for src in _SCRIPT_SRC.findall(html) if _REMOTE.match(src)]
    for tag in _LINK_TAG.findall(html):
        href = _HREF.search(tag)
        if href and _REMOTE.match(href.group(1)) and re.search(r"stylesheet|preload|modulepreload", tag, re.I):
            remote.append(href.group(1))
    remote += [url for url in _CSS_IMPORT.findall(html) if _REMOTE.match(url)]
    if remote:
        raise OnlineAssetError(
            f"the map would load {len(remote)} file(s) from the internet: {', '.join(sorted(set(remote)))}; "
            "serve them from gridmap/static/vendor (see gridmap.assets)"
        )
    return html


def vendor_file(path: str, vendor_dir: Path | None = None) -> Path:
    """Return the installed copy of a vendor file, or raise AssetsMissing with the fix."""
    root = vendor_dir or VENDOR_DIR
    found = (root / path).resolve()
    if not found.is_relative_to(root.resolve()) or not found.is_file():
        raise AssetsMissing(f"map asset {path} is not installed; run `python -m gridmap.assets install`")
    return found


def require_installed(vendor_dir: Path | None = None) -> None:
    """Raise AssetsMissing unless every vendor file is in place."""
    for path in VENDOR_FILES:
        vendor_file(path, vendor_dir)


def _data_uri(path: Path) -> str:
    mime = mimetypes.guess_type(path.name)[0] or (
        "font/woff2" if path.suffix == ".woff2" else "application/octet-stream"
    )
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"


def _inline_css(path: Path) -> str:
    """Return a stylesheet with its relative url()s (images, fonts) turned into data: URIs."""
    text = path.read_text(encoding="utf-8")

    def replace(match: re.Match) -> str:
        target = match.group(2)
        if _REMOTE.match(target) or target.startswith(("data:", "#")):
            return match.group(0)
        file = (path.parent / target.split("?")[0].split("#")[0]).resolve()
        # Only fonts installed here (woff2) are embedded; the .ttf fallbacks are for browsers older than
        # any that runs this map, and a url() that is not found stays relative (never fetched remotely).
        if not file.is_file():
            return match.group(0)
        return f"url({_data_uri(file)})"

    return re.sub(r"url\(\s*([\"']?)([^\"')]+)\1\s*\)", replace, text)


def _script_safe(text: str) -> str:
    # A literal "</script" inside inlined code would end the element early.
    return re.sub(r"</(script)", r"<\\/\1", text, flags=re.I)


def inline_assets(html: str, base_url: str = VENDOR_URL, vendor_dir: Path | None = None) -> str:
    """Replace <script src> and stylesheet <link> tags that point at vendor files by inline copies."""
    prefix = base_url.rstrip("/") + "/"

    def script(match: re.Match) -> str:
        path = match.group(1)[len(prefix) :]
        return f"<script>{_script_safe(vendor_file(path, vendor_dir).read_text(encoding='utf-8'))}</script>"

    def link(match: re.Match) -> str:
        path = match.group(1)[len(prefix) :]
        css = re.sub(r"</(style)", r"<\\/\1", _inline_css(vendor_file(path, vendor_dir)), flags=re.I)
        return f"<style>{css}</style>"

    quoted = re.escape(prefix)
    html = re.sub(rf"<script\b[^>]*\bsrc=\"({quoted}[^\"]+)\"[^>]*>\s*</script>", script, html)
    html = re.sub(rf"<link\b[^>]*\bhref=\"({quoted}[^\"]+\.css)\"[^>]*/?>", link, html)
    if prefix in html:
        leftover = re.search(rf"{quoted}[^\"'\s)]+", html)
        raise OnlineAssetError(f"could not inline {leftover.group(0) if leftover else prefix}")
    return html


# ---- installing -----------------------------------------------------------------------------------------
def default_cache_dir() -> Path:
    """Where `npm ci` installs node_modules: outside the package, so nothing third-party lands in it."""
    explicit = os.environ.get("GRIDMAP_ASSET_CACHE")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gridmap" / "npm"


def _lock_digest(source_dir: Path) -> str:
    digest = hashlib.sha256()
    for name in NPM_FILES:
        file = source_dir / name
        digest.update(file.read_bytes() if file.exists() else b"")
    return digest.hexdigest()


def install(
    *, cache_dir: Path | None = None, vendor_dir: Path | None = None, source_dir: Path = REPO_DIR, npm: str = "npm"
) -> list[Path]:
    """Install the npm packages of package-lock.json in `cache_dir` and copy the used files into vendor/."""
    cache_dir = cache_dir or default_cache_dir()
    vendor_dir = vendor_dir or VENDOR_DIR
    if not (source_dir / "package-lock.json").is_file():
        raise ConfigError(f"no package-lock.json in {source_dir}")
    if shutil.which(npm) is None:
        raise ConfigError("npm is not installed (Debian: apt-get install npm)")
    cache_dir.mkdir(parents=True, exist_ok=True)
    stamp = cache_dir / ".gridmap-lock"
    digest = _lock_digest(source_dir)
    if not (stamp.exists() and stamp.read_text() == digest and (cache_dir / "node_modules").is_dir()):
        for name in NPM_FILES:
            if (source_dir / name).exists():
                shutil.copy2(source_dir / name, cache_dir / name)
        # --ignore-scripts: these are static files; no package needs to run code at install time.
        subprocess.run([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=cache_dir, check=True)
        stamp.write_text(digest)
    modules = cache_dir / "node_modules"
    if vendor_dir.exists():
        shutil.rmtree(vendor_dir)
    copied = []
    versions = {}
    for path in VENDOR_FILES:
        source = modules / path
        if not source.is_file():
            raise ConfigError(f"{path} is not in the installed npm packages; check package.json")
        target = vendor_dir / path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
        copied.append(target)
        package = path.split("/")[0] if not path.startswith("@") else "/".join(path.split("/")[:2])
        if package not in versions:
            versions[package] = json.loads((modules / package / "package.json").read_text())["version"]
    (vendor_dir / MANIFEST).write_text(json.dumps({"packages": versions, "files": list(VENDOR_FILES)}, indent=1))
    return copied


def main(argv: list[str] | None = None) -> int:
    """`python -m gridmap.assets install [--cache DIR]` (what scripts/setup.sh runs) or `check`."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m gridmap.assets", description=main.__doc__)
    parser.add_argument("action", choices=("install", "check"))
    parser.add_argument("--cache", type=Path, help="Directory for npm's node_modules (default: ~/.cache/gridmap/npm)")
    args = parser.parse_args(argv)
    try:
        if args.action == "install":
            copied = install(cache_dir=args.cache)
            size = sum(p.stat().st_size for p in copied)
            print(f"installed {len(copied)} files ({size / 1e6:.2f} MB) into {VENDOR_DIR}")
        else:
            require_installed()
            print(f"all {len(VENDOR_FILES)} map assets are installed in {VENDOR_DIR}")
    except (GridmapError, subprocess.CalledProcessError) as exc:
        print(f"error: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

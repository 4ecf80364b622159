"""Offline web assets for visdom's server, fetched once from the npm registry.

``python -m visdom.server`` first runs ``visdom.server.build.download_scripts``, which pulls ~20
JavaScript/CSS/font files from unpkg, cdn.plot.ly, d3js.org and cdnjs *every* start until
``static/version.built`` holds the installed visdom version, and then still fetches any MathJax
file that is missing, with ``requests`` and no error handling: offline, the server crashes. We put
every file at the exact path ``download_scripts`` checks, taken from the same package versions on
the npm registry (reachable where CDNs are not, and cached by npm), then write the marker.

The mapping below mirrors visdom 0.2.4's ``build.py``; update it together with the visdom pin.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from fast_style.dashboard.errors import DashboardError

__all__ = ["ASSETS", "assets_installed", "install_assets", "marker_path", "static_dir", "visdom_version"]

_FIX = "then rerun `python -m fast_style.dashboard install-assets`"
_MATHJAX = "js/mathjax/2.7.5/"
_GLYPHS = "package/dist/fonts/glyphicons-halflings-regular"

# (npm package@version, file inside the package tarball, path under visdom's static/ folder)
ASSETS: tuple[tuple[str, str, str], ...] = (
    ("jquery@3.1.1", "package/dist/jquery.min.js", "js/jquery.min.js"),
    ("bootstrap@3.3.7", "package/dist/js/bootstrap.min.js", "js/bootstrap.min.js"),
    ("bootstrap@3.3.7", "package/dist/css/bootstrap.min.css", "css/bootstrap.min.css"),
    ("bootstrap@3.3.7", f"{_GLYPHS}.eot", "fonts/glyphicons-halflings-regular.eot"),
    ("bootstrap@3.3.7", f"{_GLYPHS}.woff2", "fonts/glyphicons-halflings-regular.woff2"),
    ("bootstrap@3.3.7", f"{_GLYPHS}.woff", "fonts/glyphicons-halflings-regular.woff"),
    ("bootstrap@3.3.7", f"{_GLYPHS}.ttf", "fonts/glyphicons-halflings-regular.ttf"),
    # build.py saves the svg font under its URL fragment; the browser asks for the plain name.
    ("bootstrap@3.3.7", f"{_GLYPHS}.svg", "fonts/glyphicons-halflings-regular.svg#glyphicons_halflingsregular"),
    ("bootstrap@3.3.7", f"{_GLYPHS}.svg", "fonts/glyphicons-halflings-regular.svg"),
    ("react@16.2.0", "package/umd/react.production.min.js", "js/react-react.min.js"),
    ("react-dom@16.2.0", "package/umd/react-dom.production.min.js", "js/react-dom.min.js"),
    ("react-modal@3.1.10", "package/dist/react-modal.min.js", "js/react-modal.min.js"),
    # cdn.plot.ly/plotly-2.11.1.min.js is the same build as plotly.js-dist-min@2.11.1.
    ("plotly.js-dist-min@2.11.1", "package/plotly.min.js", "js/plotly-plotly.min.js"),
    ("sjcl@1.0.7", "package/sjcl.js", "js/sjcl.js"),
    ("layout-bin-packer@1.4.0", "package/dist/layout-bin-packer.js.map", "js/layout-bin-packer.js.map"),
    ("layout-bin-packer@1.4.0", "package/dist/layout-bin-packer.js", "js/layout_bin_packer.js"),
    # d3js.org/d3.v3.min.js is d3 3.5.17; d3js.org/d3-selection-multi.v1.js is 1.0.1's build.
    ("d3@3.5.17", "package/d3.min.js", "js/d3.v3.min.js"),
    ("d3-selection-multi@1.0.1", "package/build/d3-selection-multi.js", "js/d3-selection-multi.v1.js"),
    ("save-svg-as-png@1.4.17", "package/lib/saveSvgAsPng.js", "js/saveSvgAsPng.js"),
    ("react-resizable@1.4.6", "package/css/styles.css", "css/react-resizable-styles.css"),
    ("react-grid-layout@0.16.3", "package/css/styles.css", "css/react-grid-layout-styles.css"),
    # unpkg.com/classnames@2.2.5 serves the package's main file; build.py files it under fonts/.
    ("classnames@2.2.5", "package/index.js", "fonts/classnames"),
) + tuple(
    ("mathjax@2.7.5", f"package/{name}", _MATHJAX + name)
    for name in (
        "MathJax.js",
        "config/Safe.js",
        "config/TeX-AMS-MML_HTMLorMML.js",
        "extensions/Safe.js",
        "jax/output/SVG/fonts/TeX/fontdata.js",
        "jax/output/SVG/jax.js",
        "jax/output/SVG/fonts/TeX/Size1/Regular/Main.js",
        "jax/output/SVG/config.js",
    )
)


def visdom_version() -> str:
    """The installed visdom version exactly as ``visdom.__version__`` computes it.

    Read from the package's VERSION file rather than importing visdom, which pulls in torch and
    numpy and would make the "already installed" check take seconds.
    """
    version_file = static_dir().parent / "VERSION"
    try:
        return version_file.read_text().strip()
    except OSError:
        return "no_version_file"


def static_dir() -> Path:
    """visdom's own ``static/`` folder: the server only serves from there."""
    import importlib.util

    spec = importlib.util.find_spec("visdom")
    if spec is None or spec.origin is None:
        raise DashboardError("visdom is not installed; run `pip install visdom==0.2.4`")
    return Path(spec.origin).parent / "static"


def marker_path(static: Path | None = None) -> Path:
    return (static or static_dir()) / "version.built"


def assets_installed(static: Path | None = None) -> bool:
    """True when the server will start without touching the network."""
    static = static or static_dir()
    marker = marker_path(static)
    if not marker.is_file() or marker.read_text().strip() != visdom_version():
        return False
    return all((static / target).is_file() for _, _, target in ASSETS)


def install_assets(force: bool = False, static: Path | None = None) -> Path:
    """Make visdom's static folder complete and mark it built; returns that folder.

    A no-op (milliseconds) when already installed, so install scripts can call it every time.
    """
    static = static or static_dir()
    if not force and assets_installed(static):
        return static
    _check_writable(static)
    with tempfile.TemporaryDirectory(prefix="fast-style-npm-") as tmp:
        tarballs = _npm_pack(sorted({spec for spec, _, _ in ASSETS}), Path(tmp))
        for spec, tarball in tarballs.items():
            _extract(tarball, [(m, static / t) for s, m, t in ASSETS if s == spec])
    # The marker goes last: its presence tells visdom (and us) that everything above is there.
    marker_path(static).write_text(visdom_version())
    return static


def _check_writable(static: Path) -> None:
    try:
        static.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=static, prefix=".write-test-")
        probe.close()
    except OSError as exc:
        raise DashboardError(
            f"cannot write visdom's static folder {static} ({exc.strerror or exc}); "
            f"run as the user who owns the environment, {_FIX}"
        ) from exc


def _npm_pack(specs: list[str], dest: Path) -> dict[str, Path]:
    """Download package tarballs with ``npm pack`` (one process; npm's cache makes reruns cheap)."""
    npm = shutil.which("npm")
    if npm is None:
        raise DashboardError(
            "npm not found on PATH; it is needed once to fetch visdom's web assets: "
            f"install Node.js/npm (e.g. `apt-get install npm`), {_FIX}"
        )
    cmd = [npm, "pack", "--json", "--loglevel=error", "--pack-destination", str(dest), *specs]
    try:
        done = subprocess.run(cmd, cwd=dest, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired as exc:
        raise DashboardError(
            f"npm pack timed out after {exc.timeout:.0f} s; check that the npm registry is reachable "
            f"(`npm config get registry`, proxy settings), {_FIX}"
        ) from exc
    except OSError as exc:
        raise DashboardError(f"cannot run npm ({exc}); check your Node.js/npm install, {_FIX}") from exc
    if done.returncode != 0:
        raise DashboardError(
            f"npm could not fetch visdom's web assets ({_npm_reason(done.stderr, done.returncode)}); "
            f"check that the npm registry is reachable (`npm config get registry`, proxy settings), {_FIX}"
        )
    try:
        packed = json.loads(done.stdout)
        by_name = {f"{item['name']}@{item['version']}": dest / item["filename"] for item in packed}
    except (ValueError, KeyError, TypeError) as exc:
        raise DashboardError(f"unexpected output from `npm pack --json` ({exc}); {_FIX}") from exc
    missing = [spec for spec in specs if not by_name.get(spec, Path("/nonexistent")).is_file()]
    if missing:
        raise DashboardError(f"npm did not produce tarballs for {', '.join(missing)}; {_FIX}")
    return {spec: by_name[spec] for spec in specs}


def _npm_reason(stderr: str, code: int) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for key in ("code E", "network", "ENOTFOUND", "ECONNREFUSED", "ETIMEDOUT", "404"):
        for line in lines:
            if key in line:
                return line.removeprefix("npm error ").removeprefix("npm ERR! ")
    return lines[-1] if lines else f"exit code {code}"


def _extract(tarball: Path, wanted: list[tuple[str, Path]]) -> None:
    """Copy members out of one tarball (opened once: mathjax's is 20 MB of gzip)."""
    with tarfile.open(tarball, "r:gz") as tar:
        for member, target in wanted:
            try:
                src = tar.extractfile(member)
            except KeyError:
                src = None
            if src is None:
                raise DashboardError(f"{tarball.name} has no {member}; the asset table in {__name__} is out of date")
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".part")
            with src, open(tmp, "wb") as out:
                shutil.copyfileobj(src, out)
            os.replace(tmp, target)

import http.server
import threading
from functools import partial

import pytest

from fast_style.errors import ConfigError
from fast_style.styles import cache_dir, resolve_style_image


def test_explicit_image_wins(style_image, tmp_path, monkeypatch):
    monkeypatch.setenv("FAST_STYLE_CACHE", str(tmp_path))
    assert resolve_style_image("starry_night", image=str(style_image), url="http://127.0.0.1:9/x.jpg") == style_image
    with pytest.raises(ConfigError, match="no such file"):
        resolve_style_image("starry_night", image=str(tmp_path / "nope.jpg"))


def test_download_once_into_the_cache_then_offline(styles_dir, tmp_path, monkeypatch):
    """The real urllib path, served from loopback; the second call needs no server."""
    monkeypatch.setenv("FAST_STYLE_CACHE", str(tmp_path / "cache"))
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(styles_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/the_scream.jpg"
    try:
        path = resolve_style_image("the_scream", url=url, filename="scream.jpg")
    finally:
        server.shutdown()
        server.server_close()
    assert path == cache_dir() / "scream.jpg" == tmp_path / "cache" / "styles" / "scream.jpg"
    assert path.read_bytes() == (styles_dir / "the_scream.jpg").read_bytes()
    assert resolve_style_image("the_scream", url=url, filename="scream.jpg") == path  # server is gone


def test_offline_and_not_cached_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("FAST_STYLE_CACHE", str(tmp_path))
    with pytest.raises(ConfigError) as e:
        resolve_style_image("candy", url="http://127.0.0.1:9/candy.jpg", filename="candy.jpg")
    message = str(e.value)
    assert str(tmp_path / "styles" / "candy.jpg") in message and "style.image=" in message
    assert not list((tmp_path / "styles").glob("*"))  # no partial file left


def test_downloaded_non_image_is_rejected(tmp_path, monkeypatch):
    monkeypatch.setenv("FAST_STYLE_CACHE", str(tmp_path / "cache"))
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "x.jpg").write_text("<html>404 page</html>")
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "www"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(ConfigError, match="not an image"):
            resolve_style_image("x", url=f"http://127.0.0.1:{server.server_address[1]}/x.jpg")
    finally:
        server.shutdown()
        server.server_close()
    assert not (tmp_path / "cache" / "styles" / "x.jpg").exists()


def test_a_truncated_cache_entry_is_downloaded_again(styles_dir, tmp_path, monkeypatch, caplog):
    """A cached painting cut short (full disk, killed copy) used to be returned as is and fail
    later; it is downloaded again, with one warning line, over the real urllib path."""
    monkeypatch.setenv("FAST_STYLE_CACHE", str(tmp_path / "cache"))
    good = (styles_dir / "the_scream.jpg").read_bytes()
    cached = tmp_path / "cache" / "styles" / "scream.jpg"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(good[: len(good) // 3])
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(styles_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with caplog.at_level("WARNING", logger="fast_style.styles"):
            path = resolve_style_image("the_scream", url=f"http://127.0.0.1:{server.server_address[1]}/the_scream.jpg",
                                       filename="scream.jpg")
    finally:
        server.shutdown()
        server.server_close()
    assert path == cached and path.read_bytes() == good
    assert "not a readable image" in caplog.text and "downloading it again" in caplog.text

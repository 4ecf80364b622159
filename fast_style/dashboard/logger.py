"""``VisdomLogger``: live training charts in visdom (the :class:`~fast_style.loggers.Logger`
interface and ``NullLogger`` live in :mod:`fast_style.loggers`).

``VisdomLogger`` talks to visdom's HTTP API (``POST /events`` to create or replace a window,
``POST /update`` to append points) with plain ``urllib`` from one daemon thread, instead of using
the ``visdom.Visdom`` client. The client connects in its constructor (with its own retries and a
websocket thread), prints tracebacks or raises depending on flags, and has no notion of "the server
was gone, resend everything"; the HTTP API is two JSON endpoints and gives us full control over
timeouts and reconnection.

Design, so the training loop never waits on the network:

* every ``log_*`` call only appends a small tuple to a bounded deque (oldest dropped when full)
  and returns; images are copied to uint8 on the caller's side, PNG-encoded in the worker;
* the worker folds events into an in-memory history of every line window, then syncs: appends
  only the new points while the server is up, and after an outage (or at first contact) replaces
  each window with its full history, so a restarted server ends up with the complete curves;
* an outage is reported by ONE ``logging`` warning; while down the worker retries every
  ``retry_interval`` seconds; recovery is logged at INFO.

Known limits: visdom's ``-enable_login`` needs a login cookie on every write, which this logger
does not send (use an SSH tunnel instead). A server restart that happens entirely between two
syncs (< ``flush_interval``) goes unnoticed, and the next append then creates the window with only
the newest points.
"""

from __future__ import annotations

import base64
import collections
import http.client
import io
import json
import logging
import math
import threading
import time
import urllib.request
from typing import TYPE_CHECKING, Any

from fast_style.dashboard.errors import DashboardError
from fast_style.loggers import Logger, NullLogger

if TYPE_CHECKING:  # torch is imported lazily so `python -m fast_style.dashboard` stays fast
    import torch

__all__ = ["VisdomLogger", "build_logger"]

log = logging.getLogger("fast_style.dashboard")

LOSS_WINDOW = "losses"
SMOOTHED_SUFFIX = " (smoothed)"
_COLORS = {"content": "#1f77b4", "style": "#ff7f0e", "tv": "#2ca02c", "total": "#d62728"}
_TITLES = {"images_per_s": "images/s", "lr": "learning rate"}


def build_logger(kind: str, **kwargs: Any) -> Logger:
    """Logger from a config value; extra kwargs are ignored for ``"none"`` so configs can keep them."""
    kind = (kind or "none").lower()
    if kind in ("none", "null", "off"):
        return NullLogger()
    if kind == "visdom":
        return VisdomLogger(**kwargs)
    raise DashboardError(f"unknown logger {kind!r}; expected one of: none, visdom")


class _Lines:
    """One line-chart window: full history per trace plus what the server has not seen yet."""

    def __init__(self, title: str, ytitle: str, log_y: bool) -> None:
        self.title, self.ytitle, self.log_y = title, ytitle, log_y
        self.traces: dict[str, tuple[list[int], list[float | None]]] = {}
        self.pending: dict[str, tuple[list[int], list[float | None]]] = {}
        self.synced: list[str] | None = None  # trace order on the server; None = resend everything

    def add(self, name: str, step: int, value: float | None) -> None:
        for store in (self.traces, self.pending):
            xs, ys = store.setdefault(name, ([], []))
            xs.append(step)
            ys.append(value)

    def dirty(self) -> bool:
        return bool(self.traces) and (self.synced is None or bool(self.pending))


class _Image:
    def __init__(self, title: str) -> None:
        self.title = title
        self.pixels: Any = None  # (H,W,3) uint8 numpy array
        self.caption = ""
        self.dirty_flag = False

    def dirty(self) -> bool:
        return self.dirty_flag and self.pixels is not None


def _finite(value: float) -> float | None:
    """JSON has no NaN/inf and plotly would choke on them: send a gap instead."""
    value = float(value)
    return value if math.isfinite(value) else None


def _trace_style(name: str, smoothing_on: bool) -> dict[str, Any]:
    base = name.removeprefix("val ").removesuffix(SMOOTHED_SUFFIX)
    style: dict[str, Any] = {"type": "scatter", "mode": "lines", "name": name}
    line: dict[str, Any] = {"width": 1.5}
    if base in _COLORS:
        line["color"] = _COLORS[base]
    if name.startswith("val "):
        style["mode"] = "lines+markers"
        line["dash"] = "dash"
    elif name.endswith(SMOOTHED_SUFFIX):
        line.update(width=2.5, color="#7f0000")
    elif name == "total" and smoothing_on:
        style["opacity"] = 0.4  # the smoothed trace carries the trend; keep the noisy one faint
    style["line"] = line
    return style


class VisdomLogger(Logger):
    """Non-blocking logger to a visdom server; see the module docstring for how and why."""

    def __init__(
        self,
        server: str = "http://127.0.0.1",
        port: int = 8097,
        env: str | None = "fast_style",
        base_url: str = "/",
        timeout: float = 2.0,
        log_y: bool = True,
        smoothing: float = 0.9,
        flush_interval: float = 0.25,
        retry_interval: float = 2.0,
        max_queue: int = 10_000,
    ) -> None:
        if not 0.0 <= smoothing < 1.0:
            raise DashboardError(f"smoothing must be in [0, 1), got {smoothing}")
        if env is None:  # a config with `env: null` means "the default env"
            env = "fast_style"
        if not str(env).strip():
            raise DashboardError("visdom env name must not be empty")
        if "://" not in server:
            server = "http://" + server
        base = "/" + base_url.strip("/") if base_url.strip("/") else ""
        self.url = f"{server.rstrip('/')}:{int(port)}{base}"
        self.env = str(env)
        self.timeout = float(timeout)
        self.log_y = bool(log_y)
        self.smoothing = float(smoothing)
        self.flush_interval = float(flush_interval)
        self.retry_interval = float(retry_interval)

        self._queue: collections.deque[tuple] = collections.deque(maxlen=max_queue)
        self._dropped = 0
        self._enqueued = 0
        self._delivered = 0
        self._done = threading.Condition()
        self._wake = threading.Event()
        self._closing = False
        self._closed = False
        self._up: bool | None = None  # None until the first contact
        self._ema: float | None = None
        self._ema_n = 0
        self._windows: dict[str, _Lines | _Image] = {}
        self._thread = threading.Thread(target=self._run, name="visdom-logger", daemon=True)
        self._thread.start()

    # ----------------------------------------------------------------- caller side (cheap)
    def _put(self, event: tuple) -> None:
        if self._closed:
            return
        if len(self._queue) == self._queue.maxlen:
            self._dropped += 1
        self._queue.append(event)
        self._enqueued += 1

    def log_losses(self, step: int, losses: dict[str, float], split: str = "train") -> None:
        self._put(("losses", int(step), {str(k): _finite(v) for k, v in losses.items()}, str(split)))

    def log_scalar(self, name: str, step: int, value: float) -> None:
        self._put(("scalar", str(name), int(step), _finite(value)))

    def log_image(self, name: str, image: torch.Tensor, caption: str = "") -> None:
        import torch

        img = image.detach()
        if img.dim() == 2:
            img = img.unsqueeze(0)
        if img.dim() != 3 or img.shape[0] not in (1, 3):
            raise ValueError(f"log_image expects a (3,H,W) or (1,H,W) tensor, got shape {tuple(image.shape)}")
        if img.shape[0] == 1:
            img = img.expand(3, -1, -1)
        pixels = img.float().clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).contiguous().cpu().numpy()
        self._put(("image", str(name), pixels, str(caption)))

    def flush(self, timeout: float = 2.0) -> bool:
        """Wait until everything logged so far reached the server; False on timeout or outage."""
        target = self._enqueued
        self._wake.set()
        deadline = time.monotonic() + timeout
        with self._done:
            while self._delivered < target:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._done.wait(left)
        return True

    def close(self, timeout: float = 2.0) -> None:
        """Last sync attempt and stop; never takes more than ``timeout`` seconds."""
        if self._closed:
            return
        self._closing = True
        self._wake.set()
        self._thread.join(timeout)
        self._closed = True
        if self._dropped:
            log.warning("visdom logger dropped %d events because its queue was full", self._dropped)

    # ----------------------------------------------------------------- worker side
    def _run(self) -> None:
        next_try = 0.0
        consumed = 0
        while True:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            closing = self._closing
            consumed += self._drain()
            dirty = any(w.dirty() for w in self._windows.values())
            now = time.monotonic()
            if dirty and (self._up is not False or now >= next_try or closing):
                try:
                    self._sync()
                except (OSError, http.client.HTTPException) as exc:
                    self._went_down(exc)
                    next_try = now + self.retry_interval
                else:
                    if self._up is False:
                        log.info("visdom server at %s is back; dashboard history resent", self.url)
                    self._up = True
                dirty = any(w.dirty() for w in self._windows.values())
            if not dirty:
                with self._done:
                    # Events dropped from a full queue count as handled, or flush() would wait forever.
                    self._delivered = consumed + self._dropped
                    self._done.notify_all()
            if closing:
                return

    def _drain(self) -> int:
        count = 0
        while True:
            try:
                event = self._queue.popleft()
            except IndexError:
                return count
            count += 1
            try:
                self._apply(event)
            except Exception:  # a bad value must not kill the worker thread
                log.exception("visdom logger could not use event %r", event[:2])

    def _lines(self, win: str, title: str, ytitle: str, log_y: bool) -> _Lines:
        window = self._windows.get(win)
        if not isinstance(window, _Lines):
            window = self._windows[win] = _Lines(title, ytitle, log_y)
        return window

    def _apply(self, event: tuple) -> None:
        kind = event[0]
        if kind == "losses":
            _, step, losses, split = event
            window = self._lines(LOSS_WINDOW, "losses", "loss", self.log_y)
            prefix = "" if split == "train" else f"{split} "
            for name, value in losses.items():
                window.add(prefix + name, step, value)
                if name == "total" and split == "train" and self.smoothing > 0 and value is not None:
                    # Debiased EMA (as in Adam / TensorBoard): starting from 0 and dividing by
                    # 1 - s^n lets the trend follow the fast early drop instead of hanging on to
                    # the first, huge value for ~1/(1-s) points.
                    # On a log axis the average is taken of log(value) (a geometric EMA): a linear
                    # one stays pinned near the first, orders-of-magnitude larger losses.
                    if not (self.log_y and value <= 0):  # a log axis cannot show <= 0 anyway
                        s = self.smoothing
                        self._ema_n += 1
                        x = math.log(value) if self.log_y else value
                        self._ema = s * (self._ema or 0.0) + (1 - s) * x
                        smoothed = self._ema / (1 - s**self._ema_n)
                        window.add("total" + SMOOTHED_SUFFIX, step, math.exp(smoothed) if self.log_y else smoothed)
        elif kind == "scalar":
            _, name, step, value = event
            title = _TITLES.get(name, name)
            self._lines(name, title, title, False).add(name, step, value)
        elif kind == "image":
            _, name, pixels, caption = event
            window = self._windows.get(name)
            if not isinstance(window, _Image):
                window = self._windows[name] = _Image(name)
            window.pixels, window.caption, window.dirty_flag = pixels, caption, True

    def _went_down(self, exc: BaseException) -> None:
        if self._up is not False:
            reason = getattr(exc, "reason", None) or exc
            if getattr(exc, "code", None) == 400:
                reason = "HTTP 400: a server started with -enable_login refuses writes from VisdomLogger"
            log.warning(
                "visdom server at %s is unreachable (%s); training continues, charts are kept in memory "
                "and resent when it is back (start it with `python scripts/dashboard.py`)",
                self.url,
                reason,
            )
        self._up = False
        # Whatever the server had may be gone: resend every window in full next time.
        for window in self._windows.values():
            if isinstance(window, _Lines):
                window.synced = None
            else:
                window.dirty_flag = True

    def _post(self, endpoint: str, payload: dict[str, Any]) -> str:
        payload["eid"] = self.env
        body = json.dumps(payload, allow_nan=False).encode()
        request = urllib.request.Request(
            f"{self.url}/{endpoint}", data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as resp:
            return resp.read().decode(errors="replace")

    def _sync(self) -> None:
        for win, window in self._windows.items():
            if not window.dirty():
                continue
            if isinstance(window, _Image):
                self._send_image(win, window)
            elif window.synced is None or any(name not in window.synced for name in window.pending):
                self._send_full(win, window)
            else:
                self._send_append(win, window)

    def _layout(self, window: _Lines) -> dict[str, Any]:
        yaxis: dict[str, Any] = {"title": window.ytitle, "exponentformat": "power"}
        if window.log_y:
            yaxis["type"] = "log"
        else:
            # a constant series (lr without a schedule) would otherwise be drawn at +-1 around 0
            yaxis["rangemode"] = "tozero"
        many = len(window.traces) > 1
        return {
            # Left-aligned so it does not sit under plotly's mode bar (top right).
            "title": {"text": window.title, "x": 0.02, "xanchor": "left"},
            "xaxis": {"title": "step"},
            "yaxis": yaxis,
            "showlegend": many,
            "legend": {"orientation": "h", "y": -0.2},
            "margin": {"l": 60, "r": 20, "t": 40, "b": 40},
        }

    def _send_full(self, win: str, window: _Lines) -> None:
        smoothing_on = self.smoothing > 0
        size = {"width": 640, "height": 440} if win == LOSS_WINDOW else {"width": 440, "height": 320}
        data = [
            {**_trace_style(name, smoothing_on), "x": list(xs), "y": list(ys)}
            for name, (xs, ys) in window.traces.items()
        ]
        self._post(
            "events",
            {"win": win, "data": data, "layout": self._layout(window), "opts": {"title": window.title, **size}},
        )
        window.synced = list(window.traces)
        window.pending.clear()

    def _send_append(self, win: str, window: _Lines) -> None:
        # Without "name", /update appends data[i] to the server's i-th trace; empty lists are skipped.
        assert window.synced is not None
        data = []
        for name in window.synced:
            xs, ys = window.pending.get(name, ([], []))
            data.append({"x": list(xs), "y": list(ys)})
        self._post("update", {"win": win, "data": data, "append": True})
        window.pending.clear()

    def _send_image(self, win: str, window: _Image) -> None:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(window.pixels).save(buf, format="PNG")
        src = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
        height, width = window.pixels.shape[:2]
        scale = min(1.0, 400 / max(height, width))
        opts = {
            "title": window.title,
            "width": max(int(width * scale), 160),
            "height": max(int(height * scale), 160) + 40,  # room for the pane's title bar
        }
        content = {"src": src, "caption": window.caption}
        self._post("events", {"win": win, "data": [{"type": "image", "content": content}], "opts": opts})
        window.dirty_flag = False

"""Recording a sampler's frames as it runs: MP4, GIF and PNG frames, streamed.

Each frame is a grid of the whole batch. Videos are written to a temporary file beside the
target and renamed when closed; an interrupted run (Ctrl-C) closes them properly, so they play
with the frames written so far. Nothing is kept in memory per frame for MP4 or PNG frames.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from .errors import AegenError
from .files import commit, temporary_beside
from .media import grid_columns, make_grid, save_grid


def default_scale(size: int) -> int:
    """Nearest-neighbour upscaling that makes small images visible: 128 px cells or more.
    (Checkpoints declare sizes of at least 1; the guard keeps any other caller from a
    division by zero.)"""
    return max(1, 128 // size) if size >= 1 else 1


def grid_pixels(frame, columns: int, scale: int = 1):
    """A (B, C, H, W) batch as one uint8 grid, (H', W') for grey batches and (H', W', 3) for
    colour, padded so that its sides times `scale` are even (as H.264 with yuv420p needs).
    Writers upscale it. Grey stays one channel: a third of the bytes for the encoder."""
    grid = make_grid(frame.detach().float().cpu().clamp(0, 1), columns)
    if frame.shape[1] == 1:
        grid = grid[:1]  # make_grid repeats a single channel three times
    pixels = grid.mul(255).add_(0.5).clamp_(0, 255).byte().permute(1, 2, 0).numpy()
    h, w = pixels.shape[:2]
    pad_h, pad_w = (h * scale) % 2, (w * scale) % 2
    if pad_h or pad_w:
        pixels = np.pad(pixels, ((0, pad_h), (0, pad_w), (0, 0)))
    if pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    return np.ascontiguousarray(pixels)


def upscale(pixels, scale: int):
    """Nearest-neighbour upscaling of an (H, W) or (H, W, C) array by an integer factor."""
    if scale == 1:
        return np.ascontiguousarray(pixels)
    h, w = pixels.shape[:2]
    rest = pixels.shape[2:]
    big = np.broadcast_to(pixels[:, None, :, None], (h, scale, w, scale, *rest))
    return big.reshape(h * scale, w * scale, *rest)


class _StreamWriter:
    """A file fed one frame at a time (an unscaled grid), opened at the first frame."""

    suffix = ""

    def __init__(self, path: Path, fps: float, scale: int):
        self.path, self.fps, self.scale = Path(path), fps, scale
        self.tmp: Path | None = None
        self._handle: Any = None
        self.frames = 0
        self.broken = False

    def write(self, pixels) -> None:
        try:
            if self._handle is None:
                self.tmp = temporary_beside(self.path, f".part{self.suffix}")
                self._handle = self._open(self.tmp, pixels.shape)
            self._send(pixels)
        except BaseException:
            self.broken = True  # a frame half-sent: the file must not be kept
            raise
        self.frames += 1

    def close(self, keep: bool) -> None:
        """Finish the file; rename it into place if `keep` and it is whole, else remove it."""
        try:
            if self._handle is not None:
                try:
                    self._finish(keep)
                finally:
                    self._handle = None
        except BaseException:
            self.broken = True
            raise
        finally:
            if self.tmp is not None:
                if keep and self.frames and not self.broken:
                    commit(self.tmp, self.path)
                else:
                    self.tmp.unlink(missing_ok=True)
                self.tmp = None

    def _open(self, tmp: Path, shape) -> Any:
        raise NotImplementedError

    def _finish(self, keep: bool) -> None:
        self._handle.close()

    def _send(self, pixels) -> None:
        raise NotImplementedError


class Mp4Writer(_StreamWriter):
    """H.264/yuv420p MP4: frames go unscaled down a pipe to an ffmpeg process that upscales
    (nearest) and encodes them, in parallel with sampling.

    ffmpeg is started directly rather than through imageio-ffmpeg's writer, which forks with a
    pre-exec hook (27 ms in a process holding a model, against 0.5 ms for a plain spawn) and
    polls for the end every 10 ms. It runs in its own session, so a terminal's Ctrl-C reaches
    only aegen, which then closes the pipe and lets ffmpeg finish the file.
    """

    suffix = ".mp4"
    pipe_bytes = 1 << 20  # frames queue here instead of blocking the sampler on a slow frame

    def _open(self, tmp: Path, shape) -> Any:
        import imageio_ffmpeg

        h, w = shape[:2]
        k = self.scale
        command = [
            imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-y", "-v", "error",
            *("-f", "rawvideo", "-pix_fmt", "gray" if len(shape) == 2 else "rgb24"),
            *("-s", f"{w}x{h}", "-r", str(Fraction(self.fps).limit_denominator()), "-i", "-"),
            *("-an", "-vf", f"scale=iw*{k}:ih*{k}:flags=neighbor"),
            *("-c:v", "libx264", "-pix_fmt", "yuv420p"),
            *("-crf", "18", "-preset", "ultrafast", "-threads", "1"),
            *("-f", "mp4", str(tmp)),
        ]
        self._errors = tempfile.TemporaryFile()
        try:
            process = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._errors,
                start_new_session=True,
            )
        except OSError as exc:
            self._errors.close()
            raise AegenError(f"could not start the video encoder ({command[0]}): {exc}") from None
        try:  # Linux: a deeper pipe; elsewhere the default one works, only less smoothly
            import fcntl

            fcntl.fcntl(process.stdin, fcntl.F_SETPIPE_SZ, self.pipe_bytes)
        except (ImportError, AttributeError, OSError):
            pass
        return process

    def _send(self, pixels) -> None:
        try:
            self._handle.stdin.write(memoryview(pixels).cast("B"))
        except BrokenPipeError:
            self._handle.wait()
            raise AegenError(f"the video encoder stopped: {self._ffmpeg_said()}") from None

    def _finish(self, keep: bool) -> None:
        process = self._handle
        try:
            if not keep:
                process.kill()
            try:
                process.stdin.close()
            except BrokenPipeError:
                pass
            code = process.wait()
            if keep and code != 0:
                raise AegenError(f"the video encoder failed (exit {code}): {self._ffmpeg_said()}")
        except BaseException:  # e.g. a second Ctrl-C while ffmpeg finishes: stop it first
            if process.poll() is None:
                process.kill()
                process.wait()
            raise
        finally:
            self._errors.close()

    def _ffmpeg_said(self) -> str:
        self._errors.seek(0)
        lines = self._errors.read().decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else "no message"


class GifWriter(_StreamWriter):
    """Animated GIF through imageio's pillow plugin, which keeps the frames until it closes:
    prefer MP4 for long runs."""

    suffix = ".gif"

    def _open(self, tmp: Path, shape) -> Any:
        import imageio.v3 as iio

        return iio.imopen(tmp, "w", extension=".gif", plugin="pillow")

    def _send(self, pixels) -> None:
        big = upscale(pixels, self.scale)
        self._handle.write(big, duration=1000 / self.fps, loop=0, is_batch=False)


class Recorder:
    """The `on_frame` callback of a sampling run: feeds videos, GIFs and frame PNGs.

    Use as a context manager: on success or Ctrl-C the files are closed and kept; on any
    other error the temporary files are removed.
    """

    def __init__(
        self,
        *,
        steps: int,
        count: int,
        size: int,
        video: str | os.PathLike | None = None,
        gif: str | os.PathLike | None = None,
        frames: str | os.PathLike | None = None,
        every: int = 1,
        fps: float = 24.0,
        scale: int | None = None,
    ):
        self.columns = grid_columns(count)
        self.scale = scale or default_scale(size)
        self.writers: list[_StreamWriter] = []
        if video is not None:
            self.writers.append(Mp4Writer(Path(video), fps, self.scale))
        if gif is not None:
            self.writers.append(GifWriter(Path(gif), fps, self.scale))
        self.frame_paths: dict[int, Path] = {}
        if frames is not None:
            chosen = [s for s in range(1, steps + 1) if s % every == 0 or s == steps]
            self.frame_paths = {s: Path(frames) / f"step-{s:04d}.png" for s in chosen}
        self.frames_written: list[Path] = []
        self.steps_recorded = 0

    @property
    def active(self) -> bool:
        return bool(self.writers or self.frame_paths)

    def planned(self) -> list[Path]:
        """Every path this recorder may write, to check before sampling starts."""
        return [w.path for w in self.writers] + list(self.frame_paths.values())

    def __call__(self, step: int, frame) -> None:
        if self.writers:
            pixels = grid_pixels(frame, self.columns, self.scale)
            for writer in self.writers:
                writer.write(pixels)
        if step in self.frame_paths:
            self.frames_written.append(save_grid(frame, self.frame_paths[step], self.columns))
        self.steps_recorded = step

    def written(self) -> dict[str, Any]:
        return {
            "video": str(self.writers[0].path) if self._kind(Mp4Writer) else None,
            "gif": str(self._kind(GifWriter).path) if self._kind(GifWriter) else None,
            "frames": [str(p) for p in self.frames_written],
            "frames_recorded": self.steps_recorded,
        }

    def _kind(self, cls):
        return next((w for w in self.writers if isinstance(w, cls)), None)

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, kind, exc, tb) -> None:
        keep = kind is None or issubclass(kind, KeyboardInterrupt)
        failure: BaseException | None = None
        for writer in self.writers:
            try:
                writer.close(keep)
            except BaseException as error:  # close every writer, whatever happens
                failure = failure or error
        if failure is not None and kind is None:  # the run succeeded but a file did not
            raise AegenError(f"could not finish writing a video: {failure}") from failure

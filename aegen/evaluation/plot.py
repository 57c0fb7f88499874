"""The sweep's plot: FID against model evaluations per image (log scale), one line per setting
of the swept keys other than `steps`. Drawn with PIL, so that no plotting library is needed."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from ..files import atomic_output

WIDTH, HEIGHT = 720, 480
LEFT, RIGHT, TOP, BOTTOM = 70, 200, 30, 50
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf"]


def lines_of(rows: Sequence[dict[str, Any]]) -> dict[str, list[tuple[float, float]]]:
    """{line label: [(evaluations per image, FID), ...] sorted}, a line per setting of the
    keys other than steps."""
    lines: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        rest = " ".join(f"{k}={v}" for k, v in row["setting"].items() if k != "steps")
        lines.setdefault(rest or "FID", []).append((row["nfe_per_image"], row["fid"]))
    return {k: sorted(v) for k, v in lines.items()}


def _scales(lines: dict[str, list[tuple[float, float]]]):
    xs = [x for pts in lines.values() for x, _ in pts]
    ys = [y for pts in lines.values() for _, y in pts]
    lo, hi = math.log10(max(min(xs), 1e-9)), math.log10(max(max(xs), 1e-9))
    pad = 0.1 if hi - lo < 1e-9 else 0.05 * (hi - lo)
    lo, hi = lo - pad, hi + pad
    top = max(ys) * 1.08 if max(ys) > 0 else 1.0
    bottom = min(0.0, min(ys))

    def at(x: float, y: float) -> tuple[float, float]:
        px = LEFT + (math.log10(max(x, 1e-9)) - lo) / (hi - lo) * (WIDTH - LEFT - RIGHT)
        py = HEIGHT - BOTTOM - (y - bottom) / (top - bottom) * (HEIGHT - TOP - BOTTOM)
        return px, py

    return at, sorted(set(xs)), (bottom, top)


def _axes(draw: ImageDraw.ImageDraw, at, xs: list[float], ys: tuple[float, float], font) -> None:
    x0, y0, x1, y1 = LEFT, TOP, WIDTH - RIGHT, HEIGHT - BOTTOM
    draw.rectangle([x0, y0, x1, y1], outline="black")
    for x in xs:
        px, _ = at(x, ys[0])
        draw.line([px, y1, px, y1 + 4], fill="black")
        draw.text((px, y1 + 6), f"{x:g}", fill="black", font=font, anchor="mt")
    for i in range(6):
        y = ys[0] + (ys[1] - ys[0]) * i / 5
        _, py = at(xs[0], y)
        draw.line([x0 - 4, py, x0, py], fill="black")
        draw.text((x0 - 6, py), f"{y:.3g}", fill="black", font=font, anchor="rm")
    draw.text(((x0 + x1) / 2, HEIGHT - 18), "model evaluations per image (log scale)",
              fill="black", font=font, anchor="mm")
    draw.text((8, TOP - 22), "FID", fill="black", font=font)


def plot_sweep(rows: Sequence[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Write the sweep's plot to `path` (PNG, atomically)."""
    lines = lines_of(rows)
    at, xs, ys = _scales(lines)
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    _axes(draw, at, xs, ys, font)
    for i, (name, points) in enumerate(lines.items()):
        colour = COLOURS[i % len(COLOURS)]
        pixels = [at(x, y) for x, y in points]
        if len(pixels) > 1:
            draw.line(pixels, fill=colour, width=2)
        for px, py in pixels:
            draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=colour)
        ly = TOP + 10 + 18 * i
        draw.line([WIDTH - RIGHT + 12, ly, WIDTH - RIGHT + 32, ly], fill=colour, width=2)
        draw.text((WIDTH - RIGHT + 38, ly), name, fill="black", font=font, anchor="lm")
    with atomic_output(path) as tmp:
        image.save(tmp, format="PNG")
    return Path(path)

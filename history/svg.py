"""Geometry of a server-side SVG chart: values in, coordinates out. No database, no template.

A chart is a time range (x) against bytes (y, from 0). Lines are polylines with one point per sample shown;
stacked areas are polygons (each band's top forward, the band below's top back). The template
(templates/history/_chart.html) draws them, with the same numbers in a table beside.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone
from django.utils.formats import date_format

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 78, 12, 12, 26
Y_TICKS = 4


@dataclass
class Line:
    key: str  # what it shows, for tests and styling: "allocation", "pool-12"...
    label: str
    css: str  # a class in the chart's palette: "c0".."c7", "limit"
    values: list[tuple[datetime, int]]
    area_below: list[tuple[datetime, int]] | None = None  # set: a stacked band over this line
    points: str = ""  # filled by Frame.place

    @property
    def count(self) -> int:
        return len(self.values)


@dataclass
class Rule:
    """A horizontal line at a value: the capacity, the overcommit limit, a quota."""

    label: str
    css: str
    value: int
    y: float = 0.0


@dataclass
class Frame:
    start: datetime
    end: datetime
    lines: list[Line]
    rules: list[Rule] = field(default_factory=list)
    top: int = 0
    y_ticks: list[tuple[float, int]] = field(default_factory=list)
    x_ticks: list[tuple[float, str]] = field(default_factory=list)
    width: int = WIDTH
    height: int = HEIGHT

    def x(self, at: datetime) -> float:
        span = (self.end - self.start).total_seconds() or 1.0
        return round(LEFT + (at - self.start).total_seconds() / span * (self.width - LEFT - RIGHT), 1)

    def y(self, value: float) -> float:
        return round(TOP + (1 - value / self.top) * (self.height - TOP - BOTTOM), 1)

    @property
    def baseline(self) -> float:
        return self.y(0)

    @property
    def left(self) -> int:
        return LEFT

    @property
    def right(self) -> int:
        return self.width - RIGHT

    @property
    def label_y(self) -> int:
        return self.height - 8


def _nice_top(largest: int) -> int:
    """The y axis' top: a little above the largest value, a multiple of 4 binary units (KiB, MiB, GiB...) so
    the quarter ticks read as round sizes."""
    if largest <= 0:
        return 4
    unit = 1
    while unit * 1024 * 4 <= largest:
        unit *= 1024
    step = 4 * unit
    return math.ceil(largest * 1.05 / step) * step


def _label(at: datetime, with_time: bool) -> str:
    local = timezone.localtime(at)
    return date_format(local, "SHORT_DATETIME_FORMAT" if with_time else "SHORT_DATE_FORMAT")


def place(frame: Frame) -> Frame:
    """Scale the frame to its values and compute every coordinate."""
    values = [v for line in frame.lines for _, v in line.values] + [rule.value for rule in frame.rules]
    frame.top = _nice_top(max(values, default=0))
    for line in frame.lines:
        line.points = _polyline(frame, line.values, line.area_below)
    for rule in frame.rules:
        rule.y = frame.y(rule.value)
    # (y, size): the template writes the size (|size_text), in the reader's language
    frame.y_ticks = [(frame.y(frame.top * i / Y_TICKS), int(frame.top * i / Y_TICKS)) for i in range(Y_TICKS + 1)]
    with_time = (frame.end - frame.start).days < 3
    frame.x_ticks = [(frame.x(at), _label(at, with_time))
                     for at in (frame.start, frame.start + (frame.end - frame.start) / 2, frame.end)]
    return frame


# A series of one sample (a pool's first minutes) is a polyline of one point, which SVG draws as nothing: it is
# drawn as a short mark this wide, centred on its time, instead.
SINGLE_MARK = 10


def _polyline(frame: Frame, values: Sequence[tuple[datetime, int]],
              below: Sequence[tuple[datetime, int]] | None) -> str:
    def xs(at: datetime) -> list[float]:
        x = frame.x(at)
        if len(values) != 1:
            return [x]
        x = min(max(x, frame.left + SINGLE_MARK / 2), frame.right - SINGLE_MARK / 2)
        return [x - SINGLE_MARK / 2, x + SINGLE_MARK / 2]

    points = [f"{x},{frame.y(v)}" for at, v in values for x in xs(at)]
    if below is not None:
        points += [f"{x},{frame.y(v)}" for at, v in reversed(below) for x in reversed(xs(at))]
    return " ".join(points)

"""Chart geometry for server-rendered inline SVG: no script, no network, nothing to vendor. The
templates under admin/jobs/overview/ draw what these compute, with a title, axis labels and a
table of the same figures for whoever cannot see the picture."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 24, 40
PLOT_WIDTH, PLOT_HEIGHT = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM


@dataclass(frozen=True)
class Tick:
    at: str  # pixels along the axis, formatted for the SVG (a template filter per tick is slow)
    label: str


@dataclass(frozen=True)
class Line:
    name: str
    css_class: str
    path: str  # SVG path data; a gap in the values starts a new segment
    total: float


@dataclass(frozen=True)
class LineChart:
    title: str
    description: str
    x_label: str
    y_label: str
    lines: list[Line]
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    top: int = TOP
    plot_width: int = PLOT_WIDTH
    plot_height: int = PLOT_HEIGHT

    @property
    def bottom(self) -> int:
        return self.top + self.plot_height

    @property
    def right(self) -> int:
        return self.left + self.plot_width


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^n at or above value: round numbers for the top tick."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power


def _number(value: float) -> str:
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def line_chart(
    *,
    title: str,
    description: str,
    x_label: str,
    y_label: str,
    series: Sequence[tuple[str, str, Sequence[float | None]]],
    x_labels: Sequence[tuple[int, str]],
) -> LineChart:
    """`series` is (name, css class, one value per x step, None where there is none);
    `x_labels` is (step index, label) for the ticks along the bottom."""
    steps = max((len(values) for _, _, values in series), default=1)
    top = nice_ceiling(max((v for _, _, values in series for v in values if v is not None), default=0))

    def x(index: int) -> float:
        return LEFT + PLOT_WIDTH * index / max(steps - 1, 1)

    def y(value: float) -> float:
        return TOP + PLOT_HEIGHT * (1 - value / top)

    lines = []
    for name, css_class, values in series:
        parts, pen_down = [], False
        for index, value in enumerate(values):
            if value is None:
                pen_down = False
                continue
            # A zero-length "l0,0" after each move: a value with no neighbour still shows as a dot.
            parts.append(
                f"L{x(index):.1f},{y(value):.1f}" if pen_down else f"M{x(index):.1f},{y(value):.1f}l0,0"
            )
            pen_down = True
        total = sum(v for v in values if v is not None)
        lines.append(Line(name, css_class, " ".join(parts), total))
    return LineChart(
        title=title,
        description=description,
        x_label=x_label,
        y_label=y_label,
        lines=lines,
        x_ticks=[Tick(f"{x(index):.1f}", label) for index, label in x_labels],
        y_ticks=[Tick(f"{y(top * f):.1f}", _number(top * f)) for f in (0, 0.25, 0.5, 0.75, 1)],
    )


@dataclass(frozen=True)
class Segment:
    name: str
    css_class: str
    value: float
    x: str  # formatted for the SVG, as Tick.at
    width: str


@dataclass(frozen=True)
class Bar:
    label: str
    value_text: str
    y: float
    segments: list[Segment]


@dataclass(frozen=True)
class BarChart:
    title: str
    description: str
    x_label: str
    bars: list[Bar]
    legend: list[tuple[str, str]]  # (name, css class)
    height: int
    bar_height: int
    width: int = WIDTH
    left: int = 160
    plot_width: int = WIDTH - 160 - 150


def bar_chart(
    *,
    title: str,
    description: str,
    x_label: str,
    rows: Sequence[tuple[str, str, Sequence[tuple[str, str, float]]]],
) -> BarChart:
    """Horizontal bars, one per row of (label, value text, [(segment name, css class, value)]),
    segments stacked left to right on a scale shared by every bar."""
    row_height, bar_height = 26, 18
    scale = max((sum(v for _, _, v in segments) for _, _, segments in rows), default=0) or 1
    chart = BarChart(
        title=title,
        description=description,
        x_label=x_label,
        bars=[],
        legend=[],
        height=row_height * max(len(rows), 1) + 8,
        bar_height=bar_height,
    )
    legend: dict[str, str] = {}
    for index, (label, value_text, segments) in enumerate(rows):
        at, drawn = float(chart.left), []
        for name, css_class, value in segments:
            width = chart.plot_width * value / scale
            drawn.append(Segment(name, css_class, value, f"{at:.1f}", f"{width:.1f}"))
            legend.setdefault(name, css_class)
            at += width
        chart.bars.append(Bar(label, value_text, 4 + index * row_height, drawn))
    chart.legend.extend(legend.items())
    return chart

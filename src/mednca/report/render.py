"""Turn the report's tables, figures and sentences into one self-contained HTML page (Jinja2, autoescaped).

Tables become ``<table class="sortable">`` elements whose numeric cells carry their full-precision value in
``data-value`` (for sorting and for checking the page against the result files); figures are inline PNG data
URIs, so the page makes no request to the network.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from importlib import resources

import jinja2
import pandas as pd
from markupsafe import Markup

from mednca.report.statistics import HELD, INCONCLUSIVE, NOT_HELD, NOT_TESTED


@dataclass(frozen=True)
class Column:
    """A table column: the frame's column, its header, and how a row's value is shown."""

    key: str
    header: str
    show: Callable[[pd.Series], str]
    numeric: bool = True


@dataclass(frozen=True)
class FigureItem:
    """An inline figure: title, caption and its PNG data URI."""

    title: str
    caption: str
    uri: str


def is_missing(value: object) -> bool:
    """Whether a table value is absent: None or a float NaN."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def number(value: float, digits: int = 3) -> str:
    """A float with ``digits`` decimals, or an en dash for a missing value."""
    return "–" if is_missing(value) else f"{value:.{digits}f}"


def mean_std(mean: float, std: float, digits: int = 3) -> str:
    """'mean ± std', or only the mean when the std is missing."""
    return number(mean, digits) if is_missing(std) else f"{number(mean, digits)} ± {number(std, digits)}"


def count(value: float) -> str:
    """An integer with thousands separators, or an en dash."""
    return "–" if is_missing(value) else f"{value:,.0f}"


def seconds(value: float) -> str:
    """A duration: '0.05 s', '12.3 s', '4.2 min' or '1.3 h'."""
    if is_missing(value):
        return "–"
    if value < 10:
        return f"{value:.2f} s"
    if value < 120:
        return f"{value:.1f} s"
    return f"{value / 60:.1f} min" if value < 7200 else f"{value / 3600:.1f} h"


def _cell(row: pd.Series, column: Column) -> str:
    """One ``<td>`` with the shown text and, for numeric columns, the raw value in ``data-value``."""
    text = escape(column.show(row))
    if not column.numeric:
        return f'<td class="text">{text}</td>'
    value = row.get(column.key)
    raw = "" if is_missing(value) else f' data-value="{value!r}"'
    return f"<td{raw}>{text}</td>"


def html_table(frame: pd.DataFrame, columns: Sequence[Column], table_id: str) -> Markup:
    """A sortable HTML table of ``frame`` with the given columns (an empty frame gives a short note)."""
    if frame.empty:
        return Markup('<p class="note">No data.</p>')
    headers = "".join(
        f'<th class="{"" if column.numeric else "text"}">{escape(column.header)}</th>' for column in columns
    )
    rows = "".join(
        "<tr>" + "".join(_cell(row, column) for column in columns) + "</tr>" for _, row in frame.iterrows()
    )
    return Markup(
        f'<table class="sortable" id="{escape(table_id)}"><thead><tr>{headers}</tr></thead>'
        f"<tbody>{rows}</tbody></table>"
    )


def _figure_markup(item: FigureItem | None) -> Markup:
    """A ``<figure>`` with its image and caption (nothing for None)."""
    if item is None:
        return Markup("")
    return Markup(
        f'<figure><img src="{escape(item.uri)}" alt="{escape(item.title)}">'
        f"<figcaption><strong>{escape(item.title)}.</strong> {escape(item.caption)}</figcaption></figure>"
    )


VERDICT_CLASSES = {HELD: "held", NOT_HELD: "not-held", INCONCLUSIVE: "inconclusive", NOT_TESTED: "not-tested"}
"""The CSS class of each verdict (``statistics``)."""


def _span(verdict: str) -> str:
    """A verdict in its coloured span."""
    return f'<span class="{VERDICT_CLASSES[verdict]}">{verdict}</span>'


def _verdict(sentence: str) -> Markup:
    """A finding with 'held' / 'did not hold' / 'inconclusive at this sample size' highlighted."""
    text = str(escape(sentence))
    text = text.replace(NOT_HELD, _span(NOT_HELD))
    text = text.replace(f" {HELD}", f" {_span(HELD)}")
    text = text.replace(INCONCLUSIVE, _span(INCONCLUSIVE))
    return Markup(text)


def render_report(context: dict) -> str:
    """The report page from the packaged template and a context of tables, figures, findings and run info."""
    environment = jinja2.Environment(
        loader=jinja2.FunctionLoader(
            lambda name: resources.files("mednca.report").joinpath("templates", name).read_text()
        ),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["verdict"] = _verdict
    environment.filters["verdict_class"] = VERDICT_CLASSES.__getitem__
    environment.globals["figure"] = _figure_markup
    return environment.get_template("report.html.j2").render(**context)

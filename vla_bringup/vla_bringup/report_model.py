"""The evaluation report as data: a header and sections, each a title and parts (the model
that ``report_sections.build_report`` fills and ``report_render`` renders).

``templates/report.md.j2`` and ``report.html.j2`` render any section from its parts; a new kind
of part is one dataclass here and one branch in each template. Every name here is also
importable from :mod:`vla_bringup.report_sections`.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar


@dataclass(frozen=True)
class Text:
    """A paragraph."""

    text: str
    kind: ClassVar[str] = 'text'


@dataclass(frozen=True)
class Table:
    """Rows of text cells under a header; the page sets the last row (total, overall) in bold."""

    header: Sequence[str]
    rows: Sequence[Sequence[str]]
    css: str = ''  # the HTML table's class
    kind: ClassVar[str] = 'table'


@dataclass(frozen=True)
class Facts:
    """Label: value lines (a definition list on the page)."""

    items: Sequence[tuple[str, str]]
    kind: ClassVar[str] = 'facts'


@dataclass(frozen=True)
class Figure:
    """A plot: written to ``figures/NAME.png`` (linked from the Markdown), inlined in the page."""

    name: str
    title: str
    png: bytes = field(repr=False)
    kind: ClassVar[str] = 'figure'


@dataclass(frozen=True)
class Media:
    """One rollout GIF/MP4 and what it shows."""

    caption: str
    path: Path


@dataclass(frozen=True)
class Rollouts:
    """The rollouts shown for one task, under a heading of their own."""

    title: str
    items: Sequence[Media]
    kind: ClassVar[str] = 'rollouts'


@dataclass(frozen=True)
class Bullets:
    """A bulleted list."""

    items: Sequence[str]
    css: str = ''  # the HTML list's class
    kind: ClassVar[str] = 'bullets'


Part = Text | Table | Facts | Figure | Rollouts | Bullets


@dataclass(frozen=True)
class Section:
    """A ``##`` heading in the Markdown, an ``<h2>`` on the page, and its parts in order."""

    id: str  # stable name, for code that looks a section up
    title: str
    parts: Sequence[Part]


@dataclass(frozen=True)
class Report:
    """What both report files show: the header, then the sections in order."""

    title: str  # the run directory's name
    run_dir: Path
    created: str  # ISO 8601 UTC
    summary: str  # one sentence: the policy's success against the baseline's
    sections: Sequence[Section]

    @property
    def figures(self) -> list[Figure]:
        """Every figure of the sections (each is written to ``figures/NAME.png``)."""
        return [p for s in self.sections for p in s.parts if isinstance(p, Figure)]

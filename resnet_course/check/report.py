"""The verdict of a check, and how findings become one.

``Report`` is what every check returns and what a notebook shows (plain text, Markdown or a framed
HTML box). ``_Findings`` collects problems while a check runs, merges the same mistake seen in
several places into one message, and ranks them: the likeliest cause first. ``_format_error``
quotes an exception the learner's code raised, pointing at the learner's line.
"""

import html
import re
import traceback
from dataclasses import dataclass, field
from pathlib import Path

_CHECKER = Path(__file__).parent  # frames in this folder are the checker's, not the learner's


@dataclass
class Report:
    """The verdict of a check: passed or not, what is wrong, and what is worth knowing.

    Attributes:
        title: What was checked, e.g. ``"check_model: resnet50"``.
        problems: Specific, human-readable problems (what, where, how to fix); empty if it passed.
            The first one names the mistake most likely to be the cause of the others.
        notes: Information that does not fail the check (e.g. ResNet v1 vs v1.5 strides).
        summary: One line saying what was checked.
        passed: True when ``problems`` is empty (a property).

    ``bool(report)`` is ``report.passed``. A notebook shows it as a framed box (HTML with inline
    styles, so it looks the same in JupyterLab, Colab and the book) and a Markdown console as
    Markdown; ``str(report)`` is the same as plain text, deterministic (no addresses or timings),
    so nbval can compare it.
    """

    title: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    summary: str = ""

    @property
    def passed(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def __bool__(self) -> bool:
        return self.passed

    def _verdict(self) -> str:
        n = len(self.problems)
        return "passed" if self.passed else f"FAILED, {n} problem{'s' * (n != 1)}"

    def __str__(self) -> str:
        lines = [f"{self.title}: {self._verdict()}"]
        if self.summary:
            lines.append(f"  {self.summary}")
        if self.problems:
            lines.append("Problems:")
            lines += [f"  {i}. {p}" for i, p in enumerate(self.problems, 1)]
        if self.notes:
            lines.append("Notes:")
            lines += [f"  - {n}" for n in self.notes]
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_markdown_(self) -> str:
        icon = "✅" if self.passed else "❌"
        lines = [f"{icon} **{_md(self.title)}: {self._verdict()}**"]
        if self.summary:
            lines += ["", _md(self.summary)]
        if self.problems:
            lines += ["", "**Problems**", ""]
            lines += [f"{i}. {_md(p)}" for i, p in enumerate(self.problems, 1)]
        if self.notes:
            lines += ["", "**Notes**", ""] + [f"- {_md(n)}" for n in self.notes]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        # A framed box with a coloured edge, so a report never reads as the author's prose.
        # Inline styles only (no CSS classes, no fixed widths): it wraps on a phone, keeps the
        # page's font and text colour (light and dark themes), and looks the same everywhere.
        colour = "#1a7f37" if self.passed else "#cf222e"
        icon = "✅" if self.passed else "❌"
        box = (
            f"border:1px solid {colour};border-left:6px solid {colour};border-radius:6px;"
            f"padding:0.5em 0.9em;margin:0.4em 0;background:{colour}14;color:inherit;"
            "max-width:100%;box-sizing:border-box;overflow-wrap:anywhere;line-height:1.45"
        )
        parts = [
            f'<div style="{box}">',
            f'<div style="font-weight:600">{icon} {_html(self.title)}: '
            f'<span style="color:{colour}">{self._verdict()}</span></div>',
        ]
        if self.summary:
            parts.append(f'<div style="opacity:0.85;margin-top:0.2em">{_html(self.summary)}</div>')
        for heading, items, tag in (("Problems", self.problems, "ol"), ("Notes", self.notes, "ul")):
            if items:
                parts.append(f'<div style="font-weight:600;margin-top:0.5em">{heading}</div>')
                parts.append(f'<{tag} style="margin:0.2em 0 0.2em 1.4em;padding:0">')
                parts += [f'<li style="margin:0.2em 0">{_html(item)}</li>' for item in items]
                parts.append(f"</{tag}>")
        parts.append("</div>")
        return "\n".join(parts)


def _md(text: str) -> str:
    """Escapes Markdown outside `code` spans, so ``__init__`` or ``<lambda>`` show as written."""
    parts = text.split("`")
    for i in range(0, len(parts), 2):  # even parts are outside backticks
        parts[i] = re.sub(r"([_*\\[\]])", r"\\\1", parts[i]).replace("<", "&lt;")
    return "`".join(parts)


def _html(text: str) -> str:
    """Escapes HTML and shows `code` spans as ``<code>``."""
    parts = html.escape(text, quote=False).split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick: show it as it is
        return html.escape(text, quote=False)
    for i in range(1, len(parts), 2):
        parts[i] = f'<code style="overflow-wrap:anywhere">{parts[i]}</code>'
    return "".join(parts)


# Problems are ranked by tier, then by where they happen in the dataflow (the first place a
# network goes wrong is the likeliest cause of what follows), then by the order they were found.
_FATAL, _MISTAKE, _RESULT = 0, 1, 2


class _Findings:
    """Collects problems and notes and ranks them.

    The same finding at several places (blocks, configurations) becomes one message: findings are
    merged by ``key`` (by default the text; the first text is kept) and ``{where}`` in the text is
    replaced by all the places it was seen.
    """

    def __init__(self, every: list[str] | None = None) -> None:
        self.problems: dict[str, tuple[str, list[str], tuple[int, int, int]]] = {}
        self.notes: dict[str, list[str]] = {}
        self.every = every or []  # all the places tried: a finding seen at all of them says so

    def problem(
        self, text: str, where: str = "", *, key: str = "", tier: int = _MISTAKE, pos: int = 0
    ) -> None:
        """Adds a problem found at op ``pos`` of the graph; see the class docstring."""
        key = key or text
        if key in self.problems:
            first, wheres, rank = self.problems[key]
            self.problems[key] = (first, [*wheres, where], min(rank, (tier, pos, rank[2])))
        else:
            self.problems[key] = (text, [where], (tier, pos, len(self.problems)))

    def note(self, text: str, where: str = "") -> None:
        """Adds a note, merged like problems."""
        self.notes.setdefault(text, []).append(where)

    def count(self) -> int:
        """Number of problems found so far, repeats included."""
        return sum(len(wheres) for _, wheres, _ in self.problems.values())

    def has(self, key: str) -> bool:
        """True if a problem with this key was found."""
        return key in self.problems

    def report(self, title: str, summary: str = "") -> Report:
        """Turns the findings into a ``Report``, most likely cause first."""
        ranked = sorted(self.problems.values(), key=lambda found: found[2])

        def places(wheres: list[str]) -> str:
            if self.every and set(wheres) == set(self.every):
                return "every configuration tried"
            return _places(wheres)

        problems = [text.replace("{where}", places(wheres)) for text, wheres, _ in ranked]
        notes = [text.replace("{where}", places(wheres)) for text, wheres in self.notes.items()]
        return Report(title, problems, notes, summary)


def _quote(name: str) -> str:
    """A module name in backticks; a description ("the identity case") as it is."""
    return name if " " in name or not name else f"`{name}`"


def _places(wheres: list[str]) -> str:
    """``["`a`", "`b`", ...]`` -> "`a`, `b` and `c`", shortened when long."""
    unique = list(dict.fromkeys(w for w in wheres if w))
    if len(unique) > 4:  # a learner needs the pattern, not 30 names
        unique = unique[:3] + [f"{len(unique) - 3} more"]
    return (
        " and ".join([", ".join(unique[:-1]), unique[-1]]) if len(unique) > 1 else "".join(unique)
    )


def _format_error(err: BaseException) -> str:
    """``"ValueError: message (in forward: `line`)"``: deterministic, first line only."""
    msg = re.sub(r" at 0x[0-9a-fA-F]+", "", str(err).strip().split("\n")[0])[:300]
    text = f"{type(err).__name__}: {msg}" if msg else type(err).__name__
    # Point at the learner's line: the last frame outside torch and this checker.
    frames = [
        fr
        for fr in traceback.extract_tb(err.__traceback__)
        if "/torch/" not in fr.filename and Path(fr.filename).parent != _CHECKER
    ]
    if frames and frames[-1].line:
        text += f" (in `{frames[-1].name}`: `{frames[-1].line.strip()}`)"
    return text

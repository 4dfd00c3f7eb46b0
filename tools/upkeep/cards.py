"""Generated tables inside the model cards, between markers, so that no number in a card is typed by hand.

A card (`model_cards/<family>.md`, written by hand) holds any number of generated blocks:

    <!-- vssm:table:flops -->            (or <!-- vssm:table:flops:vmamba --> to name another family)
    ...replaced by tools/report.py on every run...
    <!-- /vssm:table -->

Kinds (`upkeep.zoo_report.card_tables` fills them):

* `flops`: every variant's exact parameter and state-tensor counts and FLOPs under each convention, against the
  published counts;
* `flops_by_kind`: every variant's MACs split by kind of work (conv, matmul, attention, scan, norm, ...);
* `targets`: the family's rows of the speed-targets run (`benchmarks/targets.csv`: ratio, target, met, machine,
  load);
* `faithfulness`: the family's golden-fixture errors against the original code;
* `speed`: the measured variants' CPU throughput and fast-path check, with the machine named;
* `export`: every variant's torch.compile / torch.export / ONNX Runtime status and error against eager
  (`benchmarks/export_status.csv`, filled by `upkeep.exports`).

A block whose table cannot be made in a run (no results for that family) is left as it is. A card without markers
gets a generated section appended once, at its end; text outside the markers is never touched.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

KINDS = ("flops", "flops_by_kind", "targets", "faithfulness", "speed", "export")
APPENDED_KINDS = ("flops", "targets", "faithfulness", "speed", "export")  # the section a card without blocks gets
END = "<!-- /vssm:table -->"
_BLOCK = re.compile(
    r"(?P<start><!-- vssm:table:(?P<kind>[a-z_]+)(?::(?P<family>[a-z0-9_]+))? -->\n)(?P<body>.*?)(?P<end>"
    + re.escape(END) + ")",
    re.S,
)
SECTION = """

## Numbers (generated)

Written by `make report` (`tools/report.py`) between the markers below; edit the card outside them.
"""


def start_marker(kind: str, family: str | None = None) -> str:
    return f"<!-- vssm:table:{kind}{':' + family if family else ''} -->"


@dataclass(frozen=True)
class CardUpdate:
    """What refreshing one card did: the blocks it refreshed, those left alone (unknown kind or family), and
    whether the generated section was appended."""

    path: Path
    refreshed: tuple[str, ...]
    skipped: tuple[str, ...]
    appended: bool
    changed: bool


def refresh_text(text: str, family: str, table: Callable[[str, str], str | None]) -> tuple[str, list[str], list[str]]:
    """Replace the body of every marker block in `text` by `table(kind, family)` (None leaves it as it is)."""
    refreshed, skipped = [], []

    def replace(match: re.Match) -> str:
        kind, owner = match["kind"], match["family"] or family
        body = table(kind, owner)
        label = f"{kind}:{owner}"
        if body is None:
            skipped.append(label)
            return match[0]
        refreshed.append(label)
        return match["start"] + body.rstrip("\n") + "\n" + match["end"]

    return _BLOCK.sub(replace, text), refreshed, skipped


def refresh_card(path: str | Path, table: Callable[[str, str], str | None], append: bool = True) -> CardUpdate:
    """Refresh the generated blocks of one card (a block without a family is the card's: its file stem); with
    `append`, a card without blocks first gets the generated section with one block per kind."""
    path = Path(path)
    family = path.stem
    original = path.read_text()
    text, appended = original, False
    if append and not _BLOCK.search(text):
        blocks = "\n\n".join(f"{start_marker(kind)}\n{END}" for kind in APPENDED_KINDS)
        text = text.rstrip("\n") + SECTION + "\n" + blocks + "\n"
        appended = True
    text, refreshed, skipped = refresh_text(text, family, table)
    if text != original:
        path.write_text(text)
    return CardUpdate(path, tuple(refreshed), tuple(skipped), appended, text != original)


def refresh_cards(directory: str | Path, table: Callable[[str, str], str | None],
                  families: set[str]) -> list[CardUpdate]:
    """Refresh the blocks of every card in `directory`; only the cards of registered families (by file stem) get
    the generated section appended when they have no blocks yet."""
    return [refresh_card(path, table, append=path.stem in families) for path in sorted(Path(directory).glob("*.md"))]

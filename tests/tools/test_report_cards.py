"""Generated tables in the model cards: blocks between markers are replaced, nothing outside them changes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from upkeep.cards import APPENDED_KINDS, END, KINDS, refresh_card, refresh_cards, refresh_text, start_marker
from vssm import zoo

CARDS = Path(__file__).resolve().parents[2] / "model_cards"
# The developers' guide: what the family is (the card's opening), its variants, loading the original weights and their
# license, intended uses, limitations and every known difference from the original; the numbers in generated blocks.
SECTIONS = ("Variants", "heckpoints", "Intended uses", "Limitations", "Differences from the original")


def table(kind: str, family: str) -> str | None:
    if family == "nobody" or kind not in ("flops", "speed", "targets"):
        return None
    return f"| {kind} | {family} |\n|---|---|\n| 1 | 2 |\n"


HAND = """# Vim

Hand-written text with a | table | of its own |.

{flops}
stale numbers
{end}

More hand-written text.

{speed_other}
old
{end}

{unknown}
kept as it is
{end}
"""


def _card(**extra: str) -> str:
    return HAND.format(flops=start_marker("flops"), speed_other=start_marker("speed", "vmamba"),
                       unknown=start_marker("gallery"), end=END, **extra)


def test_blocks_are_replaced_and_text_outside_is_untouched() -> None:
    text, refreshed, skipped = refresh_text(_card(), "vim", table)
    assert refreshed == ["flops:vim", "speed:vmamba"] and skipped == ["gallery:vim"]
    assert "stale numbers" not in text and "| flops | vim |" in text and "| speed | vmamba |" in text
    assert "kept as it is" in text
    outside = [line for line in _card().splitlines() if line not in ("stale numbers", "old")]
    assert all(line in text.splitlines() for line in outside)
    again, _, _ = refresh_text(text, "vim", table)
    assert again == text  # refreshing twice changes nothing


def test_a_family_card_without_markers_gets_one_generated_section(tmp_path: Path) -> None:
    card = tmp_path / "vim.md"
    card.write_text("# Vim\n\nHand text.\n")
    first = refresh_card(card, table)
    assert first.appended and first.changed and first.refreshed == ("flops:vim", "targets:vim", "speed:vim")
    assert first.skipped == ("faithfulness:vim", "export:vim")  # no numbers in this run: left empty for a later one
    text = card.read_text()
    assert text.startswith("# Vim\n\nHand text.\n")
    assert all(text.count(start_marker(kind)) == 1 for kind in APPENDED_KINDS)
    second = refresh_card(card, table)
    assert not second.appended and not second.changed and card.read_text() == text


def test_only_family_cards_get_a_section_but_every_card_is_refreshed(tmp_path: Path) -> None:
    (tmp_path / "vim.md").write_text("# Vim\n")
    (tmp_path / "overview.md").write_text(f"# All\n\n{start_marker('flops', 'vmamba')}\nold\n{END}\n")
    (tmp_path / "notes.md").write_text("# Notes\n")
    updates = {u.path.name: u for u in refresh_cards(tmp_path, table, {"vim", "vmamba"})}
    assert updates["vim.md"].appended
    assert updates["overview.md"].refreshed == ("flops:vmamba",) and not updates["overview.md"].appended
    assert not updates["notes.md"].changed and (tmp_path / "notes.md").read_text() == "# Notes\n"


@pytest.mark.parametrize("family", sorted(zoo.families()))
def test_every_family_card_has_the_guides_sections_and_every_generated_block(family: str) -> None:
    text = (CARDS / f"{family}.md").read_text()
    headings = re.findall(r"^## (.+)$", text, re.M)
    for section in SECTIONS:
        assert any(section in heading for heading in headings), f"{family}.md: no '{section}' section in {headings}"
    assert "(authors)" in text or "Reported results" in text  # the original's reported accuracy, with its source
    for kind in KINDS:
        assert text.count(start_marker(kind)) == 1, f"{family}.md: expected one {kind} block"
    assert text.count(END) == len(KINDS)

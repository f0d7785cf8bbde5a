"""The templates (templates/), read as text: what Django's template language would get wrong without an error."""

from __future__ import annotations

from pathlib import Path

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def test_every_short_comment_closes_on_its_line():
    """Django's {# … #} is one line only: one that runs onto the next is printed on the page as text (the job
    page showed its comment, once more at each reload of its details). A longer note is a {% comment %} block."""
    open_comments = []
    for path in sorted(TEMPLATES.rglob("*.html")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            start = line.find("{#")
            while start != -1:
                end = line.find("#}", start + 2)
                if end == -1:
                    open_comments.append(f"{path.relative_to(TEMPLATES)}:{number}")
                    break
                start = line.find("{#", end + 2)
    assert not open_comments, "a {# comment that does not close on its line: " + ", ".join(open_comments)

"""The README's STOMP example (stomp.py; the WebSocket one is in test_web_stomp) runs
against a broker on the test's own port."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_example(stomp_port: int) -> None:
    text = README.read_text()
    section = text[text.index("## STOMP\n"):]
    section = section[:section.index("\n### Over WebSocket\n")]
    [example] = re.findall(r"```python\n(.*?)```", section, re.S)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(example.replace("61613", str(stomp_port)), {})
    assert printed.getvalue() == "/topic/news.sport goal\n"

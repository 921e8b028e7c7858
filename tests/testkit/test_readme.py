"""The README's "Testing your code" examples, run as a user would run them: every Python
block as a test module of a fresh project (pytester, in a subprocess), and the Node block
with node's test runner and amqplib, when node and npm are there."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(180)

README = Path(__file__).resolve().parents[2] / "README.md"


def blocks(language: str) -> list[str]:
    text = README.read_text()
    section = text[text.index("## Testing your code"):]
    section = section[:section.index("\n## ", 1)]
    return re.findall(rf"```{language}\n(.*?)```", section, re.S)


def test_the_python_examples_pass(pytester: pytest.Pytester) -> None:
    examples = blocks("python")
    assert len(examples) >= 5
    for number, code in enumerate(examples):
        pytester.makepyfile(**{f"test_readme_{number}": code})
    tests = sum(len(re.findall(r"^(?:async )?def test_", code, re.M)) for code in examples)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=tests)


def test_the_node_example_passes(tmp_path: Path) -> None:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are not installed: the Node example was not run")
    [example] = blocks("js")
    (tmp_path / "package.json").write_text('{"type": "module", "private": true}')
    installed = subprocess.run([npm, "install", "--no-audit", "--no-fund", "amqplib@0.10"],
                               cwd=tmp_path, capture_output=True, text=True, timeout=120)
    if installed.returncode != 0:
        pytest.skip(f"npm could not install amqplib, so the Node example was not run: "
                    f"{installed.stderr.strip()[-300:]}")
    (tmp_path / "broker.test.mjs").write_text(example)
    executable = Path(sys.executable).parent / "amqpbroker"
    result = subprocess.run([node, "--test", "broker.test.mjs"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "AMQPBROKER": str(executable),
                                 "AMQPBROKER_LOG_LEVEL": "warning"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "# pass 3" in result.stdout

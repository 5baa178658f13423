"""The documentation keeps up with the code: every refusal reason is explained."""

from __future__ import annotations

from pathlib import Path

from envelope.errors import Reason

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_every_reason_is_documented_in_errors_md() -> None:
    text = (DOCS / "errors.md").read_text(encoding="utf-8")
    reasons = [v for k, v in vars(Reason).items() if k.isupper()]
    missing = [r for r in reasons if f"| `{r}` |" not in text]
    assert not missing, f"docs/errors.md lacks {missing}"


def test_every_test_the_threat_model_names_exists() -> None:
    """docs/threat-model.md backs each control with tests: they must be real."""
    import re

    tests = Path(__file__).resolve().parent
    named: list[tuple[str, str]] = []
    for line in (DOCS / "threat-model.md").read_text(encoding="utf-8").splitlines():
        current = ""
        for token in re.findall(r"`([^`]+)`", line):
            path, _, name = token.partition("::")
            if path.endswith(".py"):
                current = path
            elif path or not name:
                continue
            if current:
                named.append((current, name))
    assert len(named) > 40
    missing = []
    for path, name in named:
        source = tests / path
        if not source.is_file():
            missing.append(path)
        elif name and f"def {name}(" not in source.read_text(encoding="utf-8"):
            missing.append(f"{path}::{name}")
    assert not missing, f"docs/threat-model.md names tests that do not exist: {missing}"

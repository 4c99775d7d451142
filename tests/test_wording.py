"""The repository speaks of the project: its prose dates history by date and commit, never by
a working session or round of work (issue 33). Checks every tracked text file."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SESSION_WORDS = re.compile(
    r"\b(?:(?:working )?session \d+|this session|working session"
    r"|round (?:one|two|three|four|\d+)|rounds? \d+)\b",
    re.IGNORECASE,
)
TEXT_SUFFIXES = {".md", ".py", ".yaml", ".yml", ".sh", ".toml", ".txt", ".js", ".html", ".cfg"}


def tracked_text_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return [ROOT / name for name in listed if Path(name).suffix in TEXT_SUFFIXES]


def test_no_working_session_or_round_words_in_the_repository():
    found = []
    for path in tracked_text_files():
        if path == Path(__file__).resolve() or not path.is_file():
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if SESSION_WORDS.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:100]}")
    assert not found, "\n".join(found)

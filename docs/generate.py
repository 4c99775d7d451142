"""Writes the manual's reference pages from the code: every config key (the schema's types,
defaults and field texts), every telemetry key (the telemetry schema) and the `townlet`
command's help (its parser). `make docs` runs it before `mkdocs build --strict`; the docs test
checks that the config page lists every key of the schema.

Run: python docs/generate.py [OUTPUT_DIR]   (default: docs/reference)
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import sys
import types
import typing
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_SOURCE = ROOT / "townlet" / "config" / "schema.py"


def field_texts(source: Path = SCHEMA_SOURCE) -> dict[tuple[str, str], str]:
    """(class, field) -> the string literal written under the field (its meaning)."""
    texts = {}
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.ClassDef):
            continue
        body = node.body
        for first, second in zip(body, body[1:], strict=False):
            if (
                isinstance(first, ast.AnnAssign)
                and isinstance(first.target, ast.Name)
                and isinstance(second, ast.Expr)
                and isinstance(second.value, ast.Constant)
                and isinstance(second.value.value, str)
            ):
                texts[(node.name, first.target.id)] = " ".join(second.value.value.split())
    return texts


def type_name(hint: typing.Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if origin is not None:
        inner = ", ".join(type_name(a) for a in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return " | ".join(member.value for member in hint)
    if hint is type(None):
        return "None"
    return getattr(hint, "__name__", str(hint))


def _default(field: dataclasses.Field) -> str:
    if field.default is not dataclasses.MISSING:
        value = field.default
        if isinstance(value, enum.Enum):
            return f"`{value.value}`"
        return f"`{value!r}`" if value != "???" else "required"
    if field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
        if dataclasses.is_dataclass(value):
            return ""
        return f"`{value!r}`"
    return "required"


def _dataclass_in(hint: typing.Any) -> type | None:
    """The dataclass a field holds, directly or as the items of a list or a dict."""
    if dataclasses.is_dataclass(hint):
        return hint
    for arg in typing.get_args(hint):
        found = _dataclass_in(arg)
        if found is not None:
            return found
    return None


def config_rows(cls: type, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(key, type, default, meaning) for every field of `cls`, nested ones by dotted path
    (`[]` for the items of a list, `<name>` for the entries of a map)."""
    texts = field_texts()
    hints = typing.get_type_hints(cls)
    rows = []
    for field in dataclasses.fields(cls):
        key, hint = f"{prefix}{field.name}", hints[field.name]
        nested = _dataclass_in(hint)
        meaning = texts.get((cls.__name__, field.name), "")
        if nested is None:
            rows.append((key, type_name(hint), _default(field), meaning))
            continue
        origin = typing.get_origin(hint)
        if origin is list:
            rows.append((key, f"list of {nested.__name__}", _default(field), meaning))
            rows += config_rows(nested, f"{key}[].")
        elif origin is dict:
            rows.append((key, f"map of {nested.__name__}", _default(field), meaning))
            rows += config_rows(nested, f"{key}.<name>.")
        else:
            rows += config_rows(nested, f"{key}.")
    return rows


def range_of(key: str) -> str:
    """The range `config/validate.py` checks the key against, if it declares one."""
    from townlet.config.validate import RANGES

    found = RANGES.get(key.replace(".<name>.", ".*.").replace("[].", ".*."))
    return found.describe() if found is not None else ""


HEADER = "| key | type | default | range | meaning |"


def config_page() -> str:
    from townlet.config.schema import TownletConfig

    lines = [
        "# Config keys",
        "",
        "Every key of the composed config, from the schema (`townlet/config/schema.py`): its "
        "type, default (what the `conf/` defaults list leaves it at may differ: see "
        "`python experiments/train.py --cfg job`), the range `config/validate.py` checks and "
        "meaning. Unknown keys, wrong types and out-of-range numbers are errors naming the key.",
        "",
    ]
    group = None
    for key, kind, default, meaning in config_rows(TownletConfig):
        top = key.split(".")[0].split("[")[0]
        if top != group:
            group = top
            lines += ["", f"## `{top}`", "", HEADER, "|---|---|---|---|---|"]
        cells = (f"`{key}`", kind, default, range_of(key), meaning)
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def telemetry_page() -> str:
    from townlet.telemetry.schema import ALL_KEYS, CURRENT_VERSION

    lines = [
        "# Telemetry keys",
        "",
        f"One record per epoch in `telemetry/ppo.jsonl` (version {CURRENT_VERSION} unless a "
        "record carries the anneal keys (1.2) or the profile keys (1.3)), from "
        "`townlet/telemetry/schema.py`.",
        "",
        "| key | since | kind | required | meaning |",
        "|---|---|---|---|---|",
    ]
    for key in ALL_KEYS:
        required = "yes" if key.required else "no"
        meaning = key.meaning.replace("|", "\\|")
        lines.append(f"| `{key.name}` | {key.since} | {key.kind} | {required} | {meaning} |")
    return "\n".join(lines) + "\n"


def cli_page() -> str:
    from townlet.cli import build_parser

    parser = build_parser()
    lines = ["# The `townlet` command", "", "```text", parser.format_help().rstrip(), "```"]
    actions = [a for a in parser._actions if hasattr(a, "choices") and isinstance(a.choices, dict)]
    for name, sub in actions[0].choices.items():
        help_text = sub.format_help().rstrip()
        lines += ["", f"## `townlet {name}`", "", "```text", help_text, "```"]
    return "\n".join(lines) + "\n"


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, page in (
        ("config.md", config_page()),
        ("telemetry.md", telemetry_page()),
        ("cli.md", cli_page()),
    ):
        (out / name).write_text(page, encoding="utf-8")
        print(f"wrote {out / name}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "reference")

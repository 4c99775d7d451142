"""Writes the manual's reference pages from the code: every config key (the schema's types,
defaults and field texts), every telemetry key (the telemetry schema), the `townlet` command's
help (its parser), the default world's numbers (the composed default config), the Python API
(mkdocstrings reads the modules' docstrings) and the benchmark figures (the JSON lines
`benchmarks/collect.py` kept, with the date, machine, load and commit of each). `make docs` runs
it before `mkdocs build --strict`; the docs test checks that the config page lists every key of
the schema.

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


def _table(header: tuple[str, ...], rows: list[tuple]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |")
    return lines + [""]


def _hours(open_hour: float, close_hour: float) -> str:
    if (open_hour, close_hour) == (0.0, 24.0):
        return "always"
    return f"{open_hour:g}:00-{close_hour:g}:00"


def world_page() -> str:
    """The default world's numbers, read from the config `make train` composes."""
    from townlet.scenarios.build import load_config, typed

    config = typed(load_config([]))
    world, scenario = config.world, config.scenario
    minutes = 24 * 60 / world.ticks_per_day
    lines = [
        "# The default world's numbers",
        "",
        "Read from the composed default config (`conf/world/default.yaml` and the "
        f"`{scenario.name}` "
        f"scenario) each time the manual is built. One tick is {minutes:g} minutes "
        f"({world.ticks_per_day} ticks a day). The concepts pages say what each number does.",
        "",
        "## Meters",
        "",
    ]
    lines += _table(
        ("meter", "decay a tick", "initial", "critical (0 faints)", "reward weight"),
        [
            (
                f"`{name}`",
                f"{m.decay:g}",
                f"{m.initial:g}",
                "yes" if m.critical else "no",
                f"{world.reward.need_weights.get(name, 0.0):g}",
            )
            for name, m in world.meters.items()
        ],
    )
    lines += ["## Affordance types", ""]
    lines += _table(
        ("type", "capacity", "ticks", "hours", "cost", "effects", "stock a day"),
        # a workplace has no interaction: presence is what counts
        [
            (
                f"`{name}`",
                a.capacity,
                a.duration,
                _hours(a.open_hour, a.close_hour),
                f"{a.cost:g}",
                ", ".join(f"{k} {v:+g}" for k, v in a.effects.items()) or "-",
                a.stock if a.stock >= 0 else "-",
            )
            for name, a in world.affordances.items()
        ],
    )
    lines += ["## Jobs", ""]
    lines += _table(
        ("job", "shift", "grace ticks", "wage a tick", "late penalty", "absent penalty"),
        [
            (
                f"`{name}`",
                f"{j.shift_start:g}:00-{j.shift_end:g}:00",
                j.grace_ticks,
                f"{j.wage_per_tick:g}",
                f"{j.late_penalty:g}",
                f"{j.absent_penalty:g}",
            )
            for name, j in world.jobs.items()
        ],
    )
    reward = world.reward
    lines += ["## Reward", ""]
    lines += _table(
        ("key", "value"),
        [
            (f"`world.reward.{k}`", v)
            for k, v in sorted(vars(reward).items())
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        ],
    )
    lines += ["## Social life", ""]
    lines += _table(
        ("key", "value"), [(f"`world.social.{k}`", v) for k, v in vars(world.social).items()]
    )
    lines += ["## The week (rent and fatigue; off in the default town, on in `town_week`)", ""]
    week = [(f"`world.rent.{k}`", v) for k, v in vars(world.rent).items()]
    week += [(f"`world.fatigue.{k}`", v) for k, v in vars(world.fatigue).items()]
    lines += _table(("key", "value"), week)
    lines += ["## Rivalry", ""]
    lines += _table(
        ("key", "value"), [(f"`world.rivalry.{k}`", v) for k, v in vars(world.rivalry).items()]
    )
    return "\n".join(lines)


API_MODULES = (
    ("The world", "townlet.world.world"),
    ("PettingZoo adapter", "townlet.envs.pettingzoo_env"),
    ("Composing a config and building a world", "townlet.scenarios.build"),
    ("Checkpoints", "townlet.policy.checkpoint"),
    ("Evaluation", "townlet.policy.evaluate"),
    ("Recording files", "townlet.recording.format"),
    ("Telemetry records", "townlet.telemetry.reader"),
    ("Golden metrics", "townlet.golden.compare"),
)
"""The modules a user calls from Python, in the order the API page lists them."""


def api_page() -> str:
    lines = [
        "# Python API",
        "",
        "The parts of Townlet a notebook or another program calls, from their docstrings "
        "(mkdocstrings). Everything else is reached through the config and the commands.",
    ]
    for title, module in API_MODULES:
        lines += [
            "",
            f"## {title}",
            "",
            f"::: {module}",
            "    options:",
            "      show_root_heading: false",
            "      heading_level: 3",
            "      members_order: source",
            "      show_source: false",
        ]
    return "\n".join(lines) + "\n"


FIGURES = ROOT / "docs" / "benchmarks" / "figures.jsonl"


def benchmarks_page(figures: Path = FIGURES) -> str:
    """Every kept figure, grouped by the script that printed it, with its stamp."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from figures import read_figures

    lines = [
        "# Benchmark figures",
        "",
        "Written from `docs/benchmarks/figures.jsonl`, which `python benchmarks/collect.py` "
        "fills by running the benchmark scripts and stamping each JSON line they print with "
        "the date, the machine, the load and the commit. Figures from different machines or "
        "loads are not comparable; ratios measured in one run are.",
        "",
    ]
    by_script: dict[str, list[dict]] = {}
    for figure in read_figures(figures):
        by_script.setdefault(figure["script"], []).append(figure)
    for script, rows in by_script.items():
        lines += [f"## `{script}`", ""]
        table = []
        for row in rows:
            conditions = ", ".join(f"{k}={v}" for k, v in sorted(row["conditions"].items()))
            value = row["value"]
            shown = f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
            table.append(
                (
                    f"`{row['name']}`",
                    shown,
                    row["unit"],
                    conditions,
                    row["date"],
                    row["commit"][:7],
                    row["machine"],
                    f"{row['load']:.2f}",
                )
            )
        lines += _table(
            ("figure", "value", "unit", "conditions", "date", "commit", "machine", "load"), table
        )
    if not by_script:
        lines += ["No figures kept yet: run `python benchmarks/collect.py`.", ""]
    return "\n".join(lines)


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, page in (
        ("config.md", config_page()),
        ("telemetry.md", telemetry_page()),
        ("cli.md", cli_page()),
        ("world.md", world_page()),
        ("api.md", api_page()),
        ("benchmarks.md", benchmarks_page()),
    ):
        (out / name).write_text(page, encoding="utf-8")
        print(f"wrote {out / name}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "reference")

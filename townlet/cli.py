"""The `townlet` command. Sub-commands join as capabilities land (golden, telemetry, recordings)."""

from __future__ import annotations

import argparse
import json
import sys


def _names(args: argparse.Namespace) -> int:
    from townlet.scenarios import build_world, load_config
    from townlet.world import ConfigError

    try:
        world = build_world(load_config(args.overrides))
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(world.names.as_dict(), indent=2))
    return 0


def _show(args: argparse.Namespace) -> int:
    from townlet.envs import render_ansi
    from townlet.scenarios import build_world, load_config

    print(render_ansi(build_world(load_config(args.overrides))))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="townlet", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    names = sub.add_parser("names", help="print every name the world exports, as JSON")
    names.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. scenario=town")
    names.set_defaults(func=_names)
    show = sub.add_parser("show", help="print the scenario's town as text")
    show.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. scenario=town")
    show.set_defaults(func=_show)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

"""`townlet telemetry <verb>` or `python -m townlet.telemetry <verb>`.

Verbs: validate, watch, summary, plot."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from townlet.telemetry.reader import TelemetryError


def _validate(args: argparse.Namespace) -> int:
    from townlet.telemetry.parallel import validate_count
    from townlet.telemetry.validate import drift, load_baseline, validate_log

    baseline = load_baseline(Path(args.baseline)) if args.baseline else None
    worst = 0.0
    for log in args.logs:
        if not baseline:  # no table to print in order: validate on every core
            print(f"{log}: {validate_count(Path(log))} record(s) validated.")
            continue
        count = 0
        if baseline:
            keys = list(baseline)
            header = ["epoch"] + [f"{k} drift" for k in keys]
            if args.relative:
                header += [f"{k} %" for k in keys]
            print(f"{log}: drift against baseline")
            print("\t".join(header))
        for _, record in validate_log(Path(log)):
            count += 1
            if baseline:
                found = drift(record, baseline)
                row = [str(record.get("epoch"))] + [
                    f"{found[k][0]:+.6g}" if k in found else "n/a" for k in keys
                ]
                if args.relative:
                    row += [
                        f"{100 * found[k][1]:+.2f}%"
                        if k in found and found[k][1] is not None
                        else "n/a"
                        for k in keys
                    ]
                print("\t".join(row))
                worst = max([worst] + [abs(d) for d, _ in found.values()])
        print(f"{log}: {count} record(s) validated.")
    if baseline and args.drift_threshold is not None and worst > args.drift_threshold:
        print(
            f"error: baseline drift {worst:g} exceeds --drift-threshold {args.drift_threshold:g}",
            file=sys.stderr,
        )
        return 1
    return 0


def _watch(args: argparse.Namespace) -> int:
    from townlet.telemetry.watch import THRESHOLDS, dest, watch

    limits = {t: getattr(args, dest(t)) for t in THRESHOLDS if getattr(args, dest(t)) is not None}
    return watch(
        Path(args.log), limits, follow=args.follow, interval=args.interval, as_json=args.json
    )


def _summary(args: argparse.Namespace) -> int:
    from townlet.telemetry.summary import render, summarise
    from townlet.telemetry.validate import load_baseline

    baseline = load_baseline(Path(args.baseline)) if args.baseline else None
    print(render(summarise(Path(args.log), baseline, args.last), args.format))
    return 0


def _plot(args: argparse.Namespace) -> int:
    from townlet.telemetry.plot import DEFAULT_KEYS, default_output, plot

    keys = tuple(k.strip() for k in args.keys.split(",")) if args.keys else DEFAULT_KEYS
    log = Path(args.log)
    output = Path(args.output) if args.output else default_output(log, keys)
    print(plot(log, output, keys))
    return 0


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text[:50]!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_verbs(parser: argparse.ArgumentParser) -> None:
    from townlet.telemetry.watch import THRESHOLDS, dest

    verbs = parser.add_subparsers(dest="verb", required=True)
    validate = verbs.add_parser("validate", help="check every record against the schema")
    validate.add_argument("logs", nargs="+", metavar="LOG")
    validate.add_argument(
        "--baseline", help="JSON object (or a log: its first record) of baseline_* values"
    )
    validate.add_argument("--relative", action="store_true", help="add percentage drift columns")
    validate.add_argument("--drift-threshold", type=float, help="fail when any drift exceeds this")
    validate.set_defaults(func=_validate)

    watch = verbs.add_parser("watch", help="print epochs and alert on thresholds")
    watch.add_argument("log")
    watch.add_argument("--follow", action="store_true", help="wait for and tail the log")
    watch.add_argument("--interval", type=float, default=1.0, help="seconds between polls")
    watch.add_argument("--json", action="store_true", help="JSON lines for machines")
    for threshold in THRESHOLDS:
        bound = "upper" if threshold.kind == "max" else "lower"
        scope = ", rollout records only" if threshold.rollout_only else ""
        watch.add_argument(
            threshold.option,
            dest=dest(threshold),
            type=float,
            help=f"{bound} bound on {threshold.key}{scope}",
        )
    watch.set_defaults(func=_watch)

    summary = verbs.add_parser("summary", help="summarise a log")
    summary.add_argument("log")
    summary.add_argument("--baseline")
    summary.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    summary.add_argument("--last", type=_positive, help="only the last N records (N >= 1)")
    summary.set_defaults(func=_summary)

    plot = verbs.add_parser("plot", help="plot keys against epoch as a PNG")
    plot.add_argument("log")
    plot.add_argument("--output", help="PNG path (default: next to the log, named after the keys)")
    plot.add_argument("--keys", help="comma-separated keys (default: loss_total,kl_divergence)")
    plot.set_defaults(func=_plot)

    keys = verbs.add_parser("keys", help="list every key: since which version, and its meaning")
    keys.add_argument("match", nargs="?", default="", help="only keys containing this text")
    keys.set_defaults(func=_keys)


def _keys(args: argparse.Namespace) -> int:
    from townlet.telemetry.schema import ALL_KEYS

    for key in ALL_KEYS:
        if args.match in key.name:
            need = "required" if key.required else "optional"
            print(f"{key.name}\t{key.since}\t{need}\t{key.kind}\t{key.meaning}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run a parsed verb; bad input is one line on stderr and exit 2, never a traceback."""
    try:
        return args.func(args)
    except TelemetryError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="townlet telemetry", description=__doc__)
    add_verbs(parser)
    return run(parser.parse_args(argv))

"""The `townlet` command: train, capture, serve and export (Hydra jobs), evaluate a checkpoint,
inspect the town, compare with golden metrics, and work with telemetry and recordings."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from townlet.util.argtypes import index_int
from townlet.util.run_dir import RunDir


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


def _evaluate(args: argparse.Namespace) -> int:
    from townlet.policy.checkpoint import CheckpointError
    from townlet.policy.evaluate import evaluate_checkpoint, format_table
    from townlet.world import ConfigError

    try:
        report = evaluate_checkpoint(
            Path(args.checkpoint), args.overrides, args.episodes, args.seed
        )
    except (CheckpointError, ConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2) if args.json else format_table(report))
    return 0


def _populations(args: argparse.Namespace) -> int:
    from townlet.policy.checkpoint import CheckpointError
    from townlet.policy.population_modes import (
        evaluate_runs,
        plot_populations,
        policy_file,
        populations_table,
        run_label,
    )
    from townlet.util.atomic import atomic_write_json
    from townlet.world import ConfigError

    overrides = [a for a in args.runs if "=" in a]
    paths = [Path(a) for a in args.runs if "=" not in a]
    try:
        if not paths:
            raise ValueError("name a checkpoint or a run directory to evaluate")
        partners = {run_label(f): f for f in (policy_file(Path(p)) for p in args.partner)}
        report = evaluate_runs(paths, overrides, partners, args.episodes, args.seed)
    except (CheckpointError, ConfigError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    table = populations_table(report["summary"])
    print(json.dumps(report, indent=2) if args.json else table)
    if args.output_dir:
        out = Path(args.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "populations.json", report)
        (out / "populations.txt").write_text(table + "\n", encoding="utf-8")
        chart = plot_populations(report, out / "populations.png")
        print(f"wrote {out / 'populations.json'}, {chart}")
    if args.mlflow:
        from townlet.tracking.tracker import log_report_run

        metrics = {}
        for row in report["summary"]:
            prefix = f"populations/{row['mode'].replace(' ', '_')}/{row['partner']}"
            for key, name in (
                ("focal_per_capita_return", "focal_return"),
                ("focal_normalised", "focal_normalised"),
                ("background_per_capita_return", "background_return"),
                ("efficiency", "efficiency"),
                ("equality", "equality"),
            ):
                metrics[f"{prefix}/{name}"] = row[key]
            metrics[f"{prefix}/focal_on_time_rate"] = row["focal"]["on_time_rate"]
        tags = {"scenario": report["scenario"], "runs": ", ".join(str(p) for p in paths)}
        saved = (
            [out / f"populations.{x}" for x in ("json", "txt", "png")] if args.output_dir else []
        )
        run_id = log_report_run("populations", tags, metrics, saved)
        print(f"MLflow run {run_id} (experiment populations)")
    return 0


def _show(args: argparse.Namespace) -> int:
    from townlet.envs import render_ansi
    from townlet.scenarios import build_world, load_config

    world = build_world(load_config(args.overrides))
    print(render_ansi(world))
    agents = ", ".join(f"{i % 10}={name}" for i, name in enumerate(world.layout.agent_ids))
    print(f"#=wall  .=floor  agents: {agents}")
    return 0


def _golden_compare(args: argparse.Namespace) -> int:
    from townlet.golden.compare import compare_runs, drift_table

    comparison = compare_runs([Path(p) for p in args.run_dirs], Path(args.golden))
    if comparison.ok:
        within = f"{comparison.compared} metrics within tolerance"
        print(f"golden: {comparison.samples} sample(s), {within}")
        return 0
    print(drift_table(comparison.drifts))
    print(
        f"golden: {len(comparison.drifts)} metric(s) drifted across {comparison.samples} sample(s)"
    )
    return 1


def _golden_merge(args: argparse.Namespace) -> int:
    from townlet.golden.merge import merge_captures

    report = merge_captures(
        Path(args.root),
        Path(args.golden),
        output=Path(args.output) if args.output else None,
        include=args.include,
        allow_template=args.allow_template,
        dry_run=args.dry_run,
    )
    for scenario, count in report.updated.items():
        print(f"{'would update' if args.dry_run else 'updated'} {scenario}: {count} sample(s)")
    if report.unchanged:
        print(f"unchanged: {', '.join(report.unchanged)}")
    for scenario in report.skipped_templates:
        print(f"skipped template scenario {scenario} (use --allow-template)")
    if report.written_to:
        print(f"wrote {report.written_to}")
    return 0


def _recordings_list(args: argparse.Namespace) -> int:
    from townlet.recording import RecordingError, RecordingIndex

    if bool(args.run_dir) == bool(args.db):
        raise RecordingError("give a run directory, or --db PATH --recordings DIR")
    if args.db:
        if not args.recordings:
            raise RecordingError("--db needs --recordings DIR (the folder of episode files)")
        index = RecordingIndex(Path(args.db), Path(args.recordings), create=False)  # read-only
    else:
        run = Path(args.run_dir)
        if not RunDir.of(run).recordings_index.is_file():
            raise RecordingError(
                f"{run}: no recordings.db (for an index made elsewhere, e.g. a metrics.db, "
                "use --db PATH --recordings DIR)"
            )
        index = RecordingIndex.for_run(run, create=False)
    rows = index.list(
        args.stage, args.reason, args.min_reward, args.max_reward, args.limit, args.order
    )
    header = ("episode", "steps", "reward", "stage", "reasons", "file", "bytes")
    print("\t".join(header))
    for r in rows:
        print(
            f"{r['episode_id']}\t{r['survival_steps']}\t{r['total_reward']:.3f}\t{r['curriculum_stage']}"
            f"\t{','.join(r['recording_reasons'])}\t{r['file_path']}\t{r['compressed_size_bytes']}"
        )
    print(f"{len(rows)} recording(s)", file=sys.stderr)
    return 0


def _recordings_reindex(args: argparse.Namespace) -> int:
    from townlet.recording import reindex

    count, problems = reindex(Path(args.run_dir))
    for problem in problems:
        print(f"skipped: {problem}", file=sys.stderr)
    print(f"reindexed {count} recording(s) in {Path(args.run_dir) / 'recordings.db'}")
    return 1 if problems else 0


def _recordings_verify(args: argparse.Namespace) -> int:
    """Exit 0 when nothing diverges (unverifiable files are reported, not failed), else 1."""
    import time

    from townlet.recording import RecordingError, RecordingIndex
    from townlet.recording.verify import verify_episode

    run = Path(args.run_dir)
    if not RunDir.of(run).recordings_index.is_file():
        raise RecordingError(f"{run}: no recordings.db")
    index = RecordingIndex.for_run(run, create=False)
    ids = args.episode or [r["episode_id"] for r in index.list(limit=None, order="episode")]
    diverged = steps = 0
    started = time.perf_counter()
    for episode_id in ids:
        result = verify_episode(index.load(episode_id))
        print(result.line(), flush=True)
        diverged += result.verified is False
        steps += result.steps
    seconds = time.perf_counter() - started
    print(
        f"{len(ids)} episode(s), {steps} steps re-simulated in {seconds:.1f} s; "
        f"{diverged} diverged",
        file=sys.stderr,
    )
    return 1 if diverged else 0


def _report(args: argparse.Namespace) -> int:
    from townlet.tracking.seed_report import report_table, write_report
    from townlet.tracking.sweep_parent import log_to_parent

    folders = [Path(f) for f in args.folders]
    missing = [str(f) for f in folders if not f.is_dir()]
    if missing:
        print(f"error: not a folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    problems: list[str] = []
    try:
        groups, summary, picture = write_report(
            folders, Path(args.output_dir or folders[0]), problems
        )
    except (ValueError, OSError) as error:
        failure = error
    else:
        failure = None
    for line in problems:  # the runs left out, whether or not a report came of the rest
        print(f"warning: {line}", file=sys.stderr)
    if failure is not None:
        print(f"error: {failure}", file=sys.stderr)
        return 2
    print(report_table(groups))
    print(f"wrote {summary} and {picture}")
    parent = log_to_parent(folders[0], [summary, picture], _best_group_metrics(groups))
    if parent:
        print(f"logged to the sweep's parent MLflow run {parent}")
    return 0


def _best_group_metrics(groups) -> dict[str, float]:
    best = groups[0]
    metrics = {
        "seeds/best_mean": best.mean,
        "seeds/best_iqm": best.iqm,
        "seeds/groups": len(groups),
    }
    if best.interval is not None:
        metrics |= {"seeds/best_ci_low": best.interval[0], "seeds/best_ci_high": best.interval[1]}
    return metrics


def _add_recordings(sub) -> None:
    recordings = sub.add_parser("recordings", help="list recorded episodes or rebuild their index")
    verbs = recordings.add_subparsers(dest="verb", required=True)
    from townlet.recording.index import ORDERS

    listing = verbs.add_parser(
        "list", help="list a run's recordings, or an index made elsewhere (--db, read-only)"
    )
    listing.add_argument("run_dir", nargs="?")
    listing.add_argument("--db", help="an index file made elsewhere (e.g. a version-1 metrics.db)")
    listing.add_argument("--recordings", help="with --db: the folder holding the episode files")
    listing.add_argument("--order", choices=list(ORDERS), default="newest")
    listing.add_argument("--stage", type=index_int)
    listing.add_argument("--reason")
    listing.add_argument("--min-reward", type=float)
    listing.add_argument("--max-reward", type=float)
    listing.add_argument("--limit", type=index_int, default=100)
    listing.set_defaults(func=_recordings_list)
    rebuild = verbs.add_parser("reindex", help="rebuild recordings.db from the episode files")
    rebuild.add_argument("run_dir")
    rebuild.set_defaults(func=_recordings_reindex)
    check = verbs.add_parser(
        "verify", help="re-simulate recorded episodes and compare every tick's state hash"
    )
    check.add_argument("run_dir")
    check.add_argument("--episode", type=index_int, nargs="+", help="these episodes (default: all)")
    check.set_defaults(func=_recordings_verify)


def _add_golden(sub) -> None:
    from townlet.golden.store import DEFAULT_GOLDEN

    golden = sub.add_parser("golden", help="compare captures with golden metrics, or refresh them")
    verbs = golden.add_subparsers(dest="verb", required=True)
    compare = verbs.add_parser("compare", help="exit 1 and print a table when a capture drifts")
    compare.add_argument("run_dirs", nargs="+", help="capture run directories (or their parents)")
    compare.add_argument("--golden", default=str(DEFAULT_GOLDEN), help="golden file")
    compare.set_defaults(func=_golden_compare)
    merge = verbs.add_parser("merge", help="refresh the golden file from a capture suite")
    merge.add_argument("root", help="a capture run directory or a multirun folder")
    merge.add_argument("--golden", default=str(DEFAULT_GOLDEN), help="golden file to update")
    merge.add_argument("--output", help="write here instead of the golden file")
    merge.add_argument("--include", nargs="+", metavar="NAME", help="only these scenarios")
    merge.add_argument("--allow-template", action="store_true", help="include '_' scenarios")
    merge.add_argument("--dry-run", action="store_true", help="report, write nothing")
    merge.set_defaults(func=_golden_merge)


ENTRY_POINTS = {
    "train": "train PPO (Hydra overrides follow, as for experiments/train.py)",
    "capture": "capture a scenario under its script (as experiments/capture.py)",
    "serve": "serve recordings and live policies to the viewer (as experiments/serve.py)",
    "export": "export a recorded episode to MP4 (as experiments/export.py)",
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve"] and any(a.split("=", 1)[0] == "--db" for a in argv[1:]):
        from townlet.serve.standalone import main as serve_files

        return serve_files(argv[1:])  # files outside a run directory: plain options, no Hydra
    if argv[:1] == ["video"]:
        from townlet.video.cli import main as video

        return video(argv[1:])
    if argv and argv[0] in ENTRY_POINTS:  # a Hydra app: Hydra parses the rest
        from townlet.apps import run_app

        run_app(argv[0], argv[1:])
        return 0
    args = build_parser().parse_args(argv)
    if getattr(args, "runner", None):
        return args.runner(args)
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from townlet.config.errors import one_line
    from townlet.golden.store import GoldenError
    from townlet.recording import RecordingError

    try:
        return args.func(args)
    except (GoldenError, RecordingError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (HydraException, OmegaConfBaseException) as error:  # composing `overrides`
        print(f"error: {one_line(error)}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    """The `townlet` command's parser (also what the manual's CLI reference is made from)."""
    parser = argparse.ArgumentParser(prog="townlet", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, summary in ENTRY_POINTS.items():
        sub.add_parser(name, help=summary, add_help=False)
    sub.add_parser(
        "video", help="export recorded episodes to MP4 by id or in batches", add_help=False
    )
    names = sub.add_parser("names", help="print every name the world exports, as JSON")
    names.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. scenario=town")
    names.set_defaults(func=_names)
    show = sub.add_parser("show", help="print the scenario's town as text")
    show.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. scenario=town")
    show.set_defaults(func=_show)
    evaluate = sub.add_parser(
        "evaluate", help="evaluate a checkpoint against the scripted routine and random"
    )
    evaluate.add_argument("checkpoint", help="a checkpoint file (e.g. RUN/checkpoints/latest.pt)")
    evaluate.add_argument(
        "overrides", nargs="*", help="Hydra overrides; default: the checkpoint's scenario"
    )
    evaluate.add_argument("--episodes", type=int, default=16, help="episodes per policy")
    evaluate.add_argument("--seed", type=int, default=None, help="default: the config's + 1000")
    evaluate.add_argument("--json", action="store_true", help="print the report as JSON")
    evaluate.set_defaults(func=_evaluate)
    populations = sub.add_parser(
        "populations",
        help="evaluate a checkpoint in held-out populations (resident, visitor, half) beside "
        "scripted, random and partner agents",
    )
    populations.add_argument(
        "runs",
        nargs="+",
        help="checkpoint files or run directories (each is evaluated beside the others' "
        "policies), then any Hydra overrides (key=value; default: the checkpoint's scenario)",
    )
    populations.add_argument(
        "--partner",
        action="append",
        default=[],
        help="a checkpoint or run directory of another run to act as background (repeatable)",
    )
    populations.add_argument("--episodes", type=int, default=16, help="episodes per population")
    populations.add_argument("--seed", type=int, default=None, help="default: the config's + 1000")
    populations.add_argument("--output-dir", help="write populations.json, .txt and .png here")
    populations.add_argument("--json", action="store_true", help="print the report as JSON")
    populations.add_argument(
        "--mlflow",
        action="store_true",
        help="also log the summary as a run of the MLflow experiment `populations` "
        "($TOWNLET_TRACKING_URI, else ./mlruns.db)",
    )
    populations.set_defaults(func=_populations)
    _add_golden(sub)
    _add_recordings(sub)
    report = sub.add_parser(
        "report",
        help="results over seeds: group runs by config minus the seed; mean, interval, IQM, curves",
    )
    report.add_argument("folders", nargs="+", help="a sweep folder, or run folders")
    report.add_argument("--output-dir", help="where seed_report.json/.png go (default: the first)")
    report.set_defaults(func=_report)
    from townlet.telemetry.cli import add_verbs
    from townlet.telemetry.cli import run as run_telemetry

    telemetry = sub.add_parser("telemetry", help="validate, watch, summarise or plot epoch logs")
    add_verbs(telemetry)
    telemetry.set_defaults(runner=run_telemetry)
    return parser


if __name__ == "__main__":
    sys.exit(main())

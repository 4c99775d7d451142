"""The Hydra jobs behind the entry points, shared by `python experiments/<name>.py` (run from a
checkout) and `townlet <name>` (any working directory, an installed package included): both
compose the same `conf/` (in a wheel: `townlet/conf`, a link to it in the repository).

`run_app(name, overrides)` runs one as a Hydra app; single runs are checked first
(`townlet.scenarios.lint.preflight`), so a config error is one line before anything starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from townlet.config import register_configs
from townlet.config.errors import ConfigError
from townlet.config.schema import TownletConfig
from townlet.scenarios.build import CONF_DIR, typed
from townlet.scenarios.lint import preflight
from townlet.util.run_dir import RunDir
from townlet.util.stopping import Pruned

register_configs()


def _command(name: str) -> str:
    """How the user started this job, for hints that repeat the command."""
    script = Path(sys.argv[0]).name
    return f"python experiments/{name}.py" if script == f"{name}.py" else f"townlet {name}"


def train_job(cfg: DictConfig) -> float | Pruned:
    """Train PPO; return the deterministic policy's evaluation return (what sweepers optimise),
    or `Pruned` when an Optuna trial's pruner stopped it."""
    from townlet.policy.checkpoint import CheckpointError
    from townlet.policy.imitation import ImitationError
    from townlet.policy.replay import ReplayError
    from townlet.policy.train import TrainingInterrupted, describe, train
    from townlet.tracking import open_tracker

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        # checked once, here: a config error is one line before any tracked run starts
        cfg, config = _with_checkpoint_scenario(cfg, typed(cfg))
        with open_tracker(cfg, "train", run_dir) as tracker:
            try:
                result = train(config, run_dir, tracker)
            except Pruned as pruned:  # returned, so the sweeper tells Optuna PRUNED, not FAIL
                print(f"{pruned}: stopped early by the study's pruner -> {run_dir}")
                return pruned
    except (ConfigError, CheckpointError, ReplayError, ImitationError) as error:
        print(f"error: {error}", file=sys.stderr)
        if cfg.train.trial.storage is not None:
            raise  # an Optuna trial: the sweeper records it as failed and the study goes on
        sys.exit(2)
    except TrainingInterrupted as stop:
        overrides = [
            a for a in sys.argv[1:] if not a.startswith(("hydra.run.dir=", "train.resume="))
        ]
        again = " ".join([_command("train"), *overrides, f"hydra.run.dir={run_dir}"])
        print(
            f"interrupted at epoch {stop.epoch}; resume with: {again} train.resume=true",
            file=sys.stderr,
        )
        sys.exit(130)
    _point_latest(config, run_dir)
    print(describe(result, _command("train")))
    return result.objective


def _with_checkpoint_scenario(
    cfg: DictConfig, config: TownletConfig
) -> tuple[DictConfig, TownletConfig]:
    """Resuming from a checkpoint path without `scenario=`: the checkpoint's scenario (the
    config composed again and checked); otherwise the config as given."""
    from hydra import compose

    from townlet.policy.checkpoint import load_checkpoint

    resume = cfg.train.resume
    if isinstance(resume, bool) or str(resume).lower() in ("false", "true", "none", ""):
        return cfg, config
    overrides = list(HydraConfig.get().overrides.task)
    if any(o.split("=", 1)[0].lstrip("+~") == "scenario" for o in overrides):
        return cfg, config
    name = load_checkpoint(Path(str(resume))).get("scenario")
    if not name or name == cfg.scenario.name:
        return cfg, config
    print(f"resuming a '{name}' checkpoint: scenario={name}", file=sys.stderr)
    composed = compose(
        config_name=HydraConfig.get().job.config_name, overrides=[f"scenario={name}", *overrides]
    )
    return composed, typed(composed)


def _point_latest(config: DictConfig | TownletConfig, run_dir: Path) -> None:
    """`<outputs>/latest` -> this run, or `<multirun>/latest` -> this sweep (best effort: a
    filesystem without symlinks just has no shortcut)."""
    from townlet.util.atomic import point_link

    paths = (typed(config) if isinstance(config, DictConfig) else config).paths
    for folder, target in (
        (paths.resolve("outputs"), run_dir),
        (paths.resolve("multirun"), run_dir.parent),
    ):
        if folder in run_dir.resolve().parents:
            with contextlib.suppress(OSError):
                point_link(folder / "latest", target)
            return


def capture_job(cfg: DictConfig) -> None:
    """Run the scenario under its script; write samples, manifest and metrics."""
    from townlet.capture import capture, describe, track_capture
    from townlet.policy.checkpoint import CheckpointError
    from townlet.tracking import open_tracker

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        typed(cfg)  # a config error is one line before any tracked run starts
        with open_tracker(cfg, "capture", run_dir) as tracker:
            result = capture(cfg, run_dir)
            track_capture(result, tracker)
    except (ConfigError, CheckpointError) as error:  # also a world that cannot be built
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    _point_latest(cfg, run_dir)
    print(describe(result))


def serve_job(cfg: DictConfig) -> None:
    """Serve a run's (or every run's) recordings and live policy to the viewer."""
    from townlet.recording import RecordingError
    from townlet.serve.catalog import Catalog
    from townlet.serve.server import ServeOptions, TownletServer, run_forever

    if bool(cfg.run_dir) == bool(cfg.runs_root):
        print("error: give exactly one of run_dir=PATH or runs_root=PATH", file=sys.stderr)
        sys.exit(2)
    live = None
    options = cfg.serve
    limits = {
        "max_episode_bytes": int(options.max_episode_mb * 2**20),
        "cache_bytes": int(options.cache_mb * 2**20),
    }
    try:
        if not (0 < options.max_episode_mb < 2**20 and 0 < options.cache_mb < 2**30):
            raise ValueError("serve.max_episode_mb and serve.cache_mb must be positive and finite")
        if cfg.run_dir:
            run = Path(cfg.run_dir)
            if not run.is_dir():
                raise ValueError(f"run_dir {run} does not exist")
            catalog = Catalog.for_run(run, **limits)
            if RunDir.of(run).latest.is_file():
                from townlet.serve.live import LiveFactory

                live = LiveFactory(run, record=options.record_live)
        else:
            catalog = Catalog.for_root(Path(cfg.runs_root), **limits)
            for line in catalog.skipped:
                print(f"warning: {line}", file=sys.stderr)
        server = TownletServer(
            catalog,
            ServeOptions(
                options.host,
                options.port,
                options.step_delay,
                options.token,
                tuple(options.allowed_origins),
                tuple(options.allowed_hosts),
            ),
            live,
        )
    except (ValueError, RecordingError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_forever(server))


def export_job(cfg: DictConfig) -> None:
    """One recorded episode of a run directory to MP4."""
    from townlet.recording import RecordingError, RecordingIndex
    from townlet.video.export import ExportError, VideoOptions, export_from_index

    run = Path(cfg.run_dir)
    output = (
        Path(cfg.output) if cfg.output else run / "videos" / f"episode_{cfg.episode_id:06d}.mp4"
    )
    options = VideoOptions.from_settings(cfg, progress=VideoOptions.progress_for_stderr())
    try:
        index = RecordingIndex.for_run(run, create=False)  # before creating any folder
        output.parent.mkdir(parents=True, exist_ok=True)
        result = export_from_index(index, cfg.episode_id, output, options)
    except (ExportError, RecordingError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print(
        f"wrote {result['output']}: {result['frames']} frames, {result['width']}x{result['height']}"
    )


APPS: dict[str, tuple[str, Callable[[DictConfig], Any]]] = {
    "train": ("config", train_job),
    "capture": ("config", capture_job),
    "serve": ("serve", serve_job),
    "export": ("export", export_job),
}


def run_app(name: str, overrides: list[str]) -> None:
    """Run entry point `name` as a Hydra app over the packaged config (Hydra parses
    `overrides` as its command line: `-m`, `--cfg job`, `--help` work as usual)."""
    config_name, job = APPS[name]
    if config_name == "config":
        preflight(overrides)
    # the job's log is <run dir>/<name>.log, as when started as experiments/<name>.py
    sys.argv = [f"townlet {name}", f"hydra.job.name={name}", *overrides]
    hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name=config_name)(job)()

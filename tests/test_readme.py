"""Every command of the README and the manual's pages, in order, as a new user runs them on a
fresh checkout.

The commands are read from the README's bash blocks (continuation lines joined, comments
kept aside), so a README change is tested as written. Each command is classified by the first
rule that matches: run as written; run with a short training budget (what "a quick run" means
on CI's 2 cores); expected to fail with the message its comment names; a server, started until
it says it is ready and then stopped; or skipped, with the reason. A command no rule covers
fails the test, so a new README line must be classified here.

The placeholder the README uses for "your run" (`outputs/2026-11-21/10-00-00`) becomes the
default run the test trains first (`make train` with a short budget);
`multirun/2026-11-21/10-00-00` the newest sweep; a bare `ppo.jsonl` that run's telemetry.
Videos are cut to 40 steps.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from townlet.util.net import free_port

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow

# The default run must see an episode end (town episodes are 240 ticks), so it records one.
SHORT = {
    "ppo.num_envs": "4",
    "ppo.rollout_ticks": "16",
    "train.total_ticks": "256",
    "train.eval_episodes": "2",
    "train.anneal": "[]",
}
SKIP = {
    r"^make test\b": "this suite is what `make test` runs",
    r"^pip install": "installs nothing here: a dependency already",
    r"submitit_slurm": "needs a SLURM cluster (its form is checked by the sweep tests' launcher)",
    r"benchmarks/": "benchmarks take minutes each; their figures are in the README and notes",
}
ALLOWED_EXIT = {  # command pattern -> exit codes that mean "worked as the README says"
    r"telemetry watch": (0, 1),  # 1: an alert fired ("alerts ... exit 1" in the README)
}
SERVERS = {  # command pattern -> what it prints when ready
    r"experiments/serve\.py|townlet serve": "Townlet viewer on",
    r"mlflow ui": "Listening at|Uvicorn running|Serving on|running on",
}


@dataclass
class Command:
    line: str  # as the README writes it, joined
    comment: str
    block: int


def manual_pages() -> tuple[str, ...]:
    """The README, then every page of the manual's navigation in its order (mkdocs.yml); the
    generated reference pages have no commands."""
    import yaml

    def walk(entry) -> list[str]:
        if isinstance(entry, str):
            return [entry]
        if isinstance(entry, list):
            return [page for item in entry for page in walk(item)]
        return [page for value in entry.values() for page in walk(value)]

    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]
    pages = [p for p in walk(nav) if not p.startswith("reference/")]
    return ("README.md", *(f"docs/{page}" for page in pages))


MANUAL = manual_pages()
"""The pages whose commands run, in this order."""


def test_every_page_of_the_manual_is_in_its_navigation():
    """A page left out of mkdocs.yml's nav would have its commands skipped here."""
    listed = set(MANUAL)
    written = {
        str(p.relative_to(ROOT))
        for p in (ROOT / "docs").rglob("*.md")
        if "reference" not in p.parts and "samples" not in p.parts
    }
    assert written <= listed, f"pages outside the navigation: {sorted(written - listed)}"


def readme_commands() -> list[Command]:
    text = "\n".join((ROOT / page).read_text() for page in MANUAL)
    commands = []
    for block, body in enumerate(re.findall(r"```bash\n(.*?)```", text, re.S), 1):
        for raw in re.sub(r"\\\n\s*", " ", body).splitlines():
            line, _, comment = raw.partition(" #")
            if line.strip() and not line.lstrip().startswith("#"):
                commands.append(Command(" ".join(line.split()), comment.strip(), block))
    return commands


class Session:
    """A fresh checkout's folder: the repository's files linked in, everything written here.
    Commands run through bash as typed, with the project's venv first on PATH."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir()
        for name in ("conf", "experiments", "tests", "townlet", "benchmarks", "hydra_plugins"):
            (folder / name).symlink_to(ROOT / name)
        self.env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
        self.env.pop("TOWNLET_TRACKING_URI", None)  # the README's default store: ./mlruns.db
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)  # compile each module once, not per job
        self.default_run = ""

    def line(self, command: Command, tmp: Path) -> str:
        line = command.line
        if line.startswith("make train"):
            line = "python experiments/train.py"
        line = line.replace(
            "[--include town] [--output FILE] [--allow-template]",
            f"--include town --output {tmp / 'golden.json'}",
        )
        line = line.replace("outputs/2026-11-21/10-00-00", self.default_run)
        line = line.replace("multirun/2026-11-21/10-00-00", "multirun/latest")
        line = re.sub(r"(?<=\s)ppo\.jsonl\b", f"{self.default_run}/telemetry/ppo.jsonl", line)
        line = re.sub(r"hydra\.sweeper\.n_trials=\d+", "hydra.sweeper.n_trials=2", line)
        if "experiment=seeds" in line:
            line += """ 'hydra.sweeper.params.seed="1,2"'"""  # two seeds make a group
        line = re.sub(r"^\.venv/bin/python\b", "python", line)
        if re.search(r"experiments/export\.py|townlet export", line):
            line += " end=40"  # a 40-step clip: the whole episode is 40 s of encoding
        elif "townlet video" in line:
            line += " --end 40"
        if trains(line) and "experiment=smoke" not in line:
            line += "".join(f" '{k}={v}'" for k, v in SHORT.items() if f"{k}=" not in line)
        return line

    def popen(self, line: str, **options) -> subprocess.Popen:
        return subprocess.Popen(
            ["bash", "-c", line],
            cwd=self.folder,
            env=self.env,
            text=True,
            start_new_session=True,  # stopped as a group: bash and what it started
            **options,
        )

    def run(self, command: Command, tmp: Path) -> tuple[int, str]:
        process = self.popen(
            self.line(command, tmp), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        try:
            out = process.communicate(timeout=900)[0]
        finally:
            stop(process)
        return process.returncode, out

    def serve(self, command: Command, tmp: Path, ready: str) -> str:
        line, port = self.line(command, tmp), str(free_port())
        if "--port" in line:
            line = re.sub(r"--port \d+", f"--port {port}", line)
        elif "--db" in line:
            line += f" --port {port}"
        else:
            line += f" serve.port={port}"
        process = self.popen(line, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        seen, started = [], time.monotonic()
        try:
            while time.monotonic() - started < 120:
                text = process.stdout.readline()
                if not text and process.poll() is not None:
                    break
                seen.append(text)
                if re.search(ready, text):
                    return "".join(seen)
            raise AssertionError(f"{command.line}: never ready\n{''.join(seen)[-3000:]}")
        finally:
            stop(process)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def trains(line: str) -> bool:
    return bool(
        re.search(r"^make train|experiments/train\.py|townlet train", line)
    ) and not re.search(r"--help|--cfg", line)


def test_every_readme_command_works_in_order(tmp_path):
    session = Session(tmp_path / "checkout")
    commands = readme_commands()
    assert len(commands) > 40, "the README's commands were not found"
    for command in commands:
        skip = next(
            (why for pattern, why in SKIP.items() if re.search(pattern, command.line)), None
        )
        if skip:
            print(f"skipped  {command.line}  ({skip})", flush=True)
            continue
        server = next((r for p, r in SERVERS.items() if re.search(p, command.line)), None)
        started = time.monotonic()
        where = f"README block {command.block}: {command.line}"
        if server:
            session.serve(command, tmp_path, server)
        elif "--follow" in command.line:
            process = session.popen(session.line(command, tmp_path), stdout=subprocess.PIPE)
            time.sleep(3)
            stop(process)
            out = process.stdout.read()
            assert re.search(r"[Ee]poch", out), f"{where}: printed {out[:500]!r}"
        else:
            code, out = session.run(command, tmp_path)
            if command.comment.startswith("fails:"):
                assert code != 0, f"{where}: should fail"
                assert command.comment.removeprefix("fails:").strip() in out, out[-2000:]
            else:
                allowed = next(
                    (c for p, c in ALLOWED_EXIT.items() if re.search(p, command.line)), (0,)
                )
                assert code in allowed, f"{where}\n{out[-4000:]}"
        if not session.default_run and trains(command.line):
            latest = session.folder / "outputs" / "latest"
            session.default_run = str(latest.resolve().relative_to(session.folder))
        print(f"{time.monotonic() - started:6.1f} s  {command.line}", flush=True)
    assert session.default_run, "no command trained"

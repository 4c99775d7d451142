#!/usr/bin/env bash
# Build the wheel, install it (not editable) into a fresh venv, and run every entry point from an
# empty directory: the packaged config, viewer page and golden file must be inside the wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
WORK="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
python3 -m venv "$WORK/venv"
PY="$WORK/venv/bin/python"
"$PY" -m pip install --quiet --upgrade pip
"$PY" -m pip install --quiet torch==2.13.0   # first, pinned: see ../shared/DEPS.md
"$ROOT/.venv/bin/python" -m pip wheel --quiet --no-deps -w "$WORK/dist" "$ROOT"
"$ROOT/.venv/bin/uv" pip install --quiet --python "$PY" "$WORK"/dist/townlet-*.whl
mkdir "$WORK/empty" && cd "$WORK/empty"
TOWNLET="$WORK/venv/bin/townlet"
"$PY" -c "import townlet, pathlib; assert 'site-packages' in townlet.__file__, townlet.__file__"
"$PY" -c "from townlet.golden import DEFAULT_GOLDEN; assert DEFAULT_GOLDEN.is_file()"
"$TOWNLET" train experiment=smoke scenario=kitchen_breakfast tracking=off recording=periodic \
    recording.periodic=1 hydra.run.dir=run
test -f run/checkpoints/latest.pt && test -f run/recordings.db
"$TOWNLET" capture scenario=kitchen_breakfast tracking=off hydra.run.dir=capture
test -f capture/rollout_sample_manifest.json
"$TOWNLET" export run_dir=run episode_id=0 output=episode.mp4 dpi=20 fps=5
test -s episode.mp4
"$TOWNLET" recordings list run > /dev/null
PORT=$("$PY" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
"$TOWNLET" serve run_dir=run serve.port="$PORT" > serve.log 2>&1 &
for _ in $(seq 100); do
    if "$PY" -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$PORT/', timeout=1)" 2>/dev/null; then break; fi
    sleep 0.2
done
"$PY" - "$PORT" <<'PY'
import sys, urllib.request
page = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/", timeout=5).read().decode()
assert "<html" in page.lower(), page[:200]
print("wheel smoke: train, capture, export, recordings, serve all ran from the installed wheel")
PY

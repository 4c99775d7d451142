#!/usr/bin/env bash
# Makes the learning evidence in this folder: the default recipe (behaviour cloning, then PPO)
# over training seeds 1-10, the village (16 agents) over seeds 1-5 and the scratch recipe over
# seeds 1-5, each seed one torch thread,
# two jobs side by side on a 2-core machine; then `townlet report` writes, per recipe, the
# table (mean, 95% bootstrap interval, IQM) and the curves with 95% bands.
#   bash docs/learning/reproduce.sh [WORK_DIR]   (about 40 + 45 + 75 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/../.."
work="${1:-multirun/learning}"
py=.venv/bin/python
common=(recording=off tracking=off train.progress=false)

sweep() {  # sweep NAME SEEDS... : one hydra multirun per half, side by side
    local name="$1" first="$2" second="$3"
    shift 3
    for seeds in "$first" "$second"; do
        "$py" experiments/train.py -m "$@" "seed=$seeds" "${common[@]}" \
            "hydra.sweep.dir=$work/$name" 'hydra.sweep.subdir=seed_${seed}' &
    done
    wait
    .venv/bin/townlet report "$work/$name" --output-dir "docs/learning/$name"
}

sweep bc_ppo 1,2,3,4,5 6,7,8,9,10 experiment=seeds
sweep village 1,3,5 2,4 experiment=village
# scratch: the benchmark itself (its JSON lines give each seed's figures at 5/10/20/30 minutes),
# keeping its runs for the report
mkdir -p "$work" docs/learning/scratch
"$py" benchmarks/learning.py --scratch --scratch-only --seeds 1 2 3 4 5 --jobs 2 \
    --keep "$work" | tee docs/learning/scratch/benchmark.jsonl
.venv/bin/townlet report "$work/town_ppo_from_scratch" --output-dir docs/learning/scratch
# the week: the town's recipe on town_week over seeds 1-3 (experiment=week), and PPO from
# scratch on the week (seed 1)
mkdir -p docs/learning/week
"$py" benchmarks/learning.py --only town_week --seeds 1 2 3 --jobs 2 --keep "$work" \
    | tee docs/learning/week/benchmark.jsonl
"$py" benchmarks/learning.py --scratch --scratch-only --scratch-on town_week --seeds 1 \
    --keep "$work" | tee docs/learning/week/benchmark_scratch.jsonl

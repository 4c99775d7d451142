"""Held-out populations of a scenario and the report across them (`townlet populations`).

Modes after Melting Pot 2.0: **resident** (most agents focal, one stranger; two from eight
agents on), **visitor** (one focal agent among background residents) and **half** (the first
half focal). Each mode is played with every background the run can name: the scenario's
scripted routine, a uniform random policy, and each partner checkpoint (policies of other runs,
e.g. other seeds, that the focal policy never met).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from townlet.config.schema import BackgroundSlotConfig, PopulationConfig, TownletConfig
from townlet.policy.choosers import scripts_of
from townlet.policy.network import ActorCritic
from townlet.policy.population_eval import population_report, town_baselines
from townlet.tracking.seed_report import mean_interval
from townlet.util.run_dir import RunDir

MODES = ("resident", "visitor", "half")


@dataclass
class HeldOut:
    mode: str
    partner: str  # scripted | random | the checkpoint's label
    population: PopulationConfig


def background_agents(agents: list[str], mode: str) -> list[str]:
    """The agents a mode leaves to the background (never all of them, never none)."""
    if mode == "resident":
        return agents[-(2 if len(agents) >= 8 else 1) :]
    if mode == "visitor":
        return agents[1:]
    if mode == "half":
        return agents[len(agents) - len(agents) // 2 :]
    raise ValueError(f"unknown population mode {mode!r} ({', '.join(MODES)})")


def held_out_populations(config: TownletConfig, partners: dict[str, Path]) -> list[HeldOut]:
    """Every mode with every background; a one-agent scenario has none."""
    agents = [agent.id for agent in config.scenario.agents]
    if len(agents) < 2:
        return []
    sources: list[tuple[str, str, str | None]] = [("random", "random", None)]
    if scripts_of(config) is not None:
        sources.insert(0, ("scripted", "scripted", None))
    sources += [(label, "checkpoint", str(path)) for label, path in partners.items()]
    out = []
    for mode in MODES:
        background = background_agents(agents, mode)
        for label, source, checkpoint in sources:
            slot = BackgroundSlotConfig(agents=background, source=source, checkpoint=checkpoint)
            out.append(HeldOut(mode, label, PopulationConfig(f"{mode}/{label}", [slot])))
    return out


def evaluate_populations(
    config: TownletConfig,
    net: ActorCritic,
    partners: dict[str, Path],
    episodes: int,
    seed: int,
) -> dict:
    """The focal policy in every held-out population, and in its own town (all focal)."""
    baselines = town_baselines(config, episodes, seed)
    rows = []
    own = copy.deepcopy(config)
    own.population = PopulationConfig()
    report = population_report(own, net, episodes, seed, baselines)
    rows.append({"mode": "all focal", "partner": "-", **report})
    for held in held_out_populations(config, partners):
        mixed = copy.deepcopy(config)
        mixed.population = held.population
        report = population_report(mixed, net, episodes, seed, baselines)
        rows.append({"mode": held.mode, "partner": held.partner, **report})
    return {
        "scenario": config.scenario.name,
        "episodes": episodes,
        "seed": seed,
        "town_scripted_per_capita": _town(baselines["scripted"]),
        "town_random_per_capita": _town(baselines["random"]),
        "populations": rows,
    }


def _town(tally) -> float | None:
    return None if tally is None else float(np.nanmean(tally.returns))


def policy_file(path: Path) -> Path:
    """A checkpoint file, or a run directory's policy (`selected.pt`, else `latest.pt`)."""
    path = Path(path)
    if path.is_dir():
        for checkpoint in (RunDir.of(path).selected, RunDir.of(path).latest):
            if checkpoint.is_file():
                return checkpoint
        raise FileNotFoundError(f"{path}: no checkpoints/selected.pt or latest.pt")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file or run directory")
    return path


def run_label(path: Path) -> str:
    return f"{path.resolve().parents[1].name}/{path.stem}"


OTHER_RUN = "other run"


def summarise(reports: list[dict]) -> list[dict]:
    """One row per mode and partner kind over every focal run (and, for `other run`, every
    partner run): means, and a 95% bootstrap interval over those runs' figures (the episodes'
    interval when there is one run)."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for report in reports:
        for row in report["populations"]:
            kind = OTHER_RUN if row.get("partner_is_run") else row["partner"]
            groups.setdefault((row["mode"], kind), []).append(row)
    out = []
    for (mode, kind), rows in groups.items():
        values = np.array([r["focal_per_capita_return"] for r in rows], dtype=np.float64)
        interval = mean_interval(values) if len(rows) > 1 else rows[0]["focal_interval"]
        out.append(
            {
                "mode": mode,
                "partner": kind,
                "n": len(rows),
                "focal_per_capita_return": float(values.mean()),
                "focal_interval": None if interval is None else [float(x) for x in interval],
                "focal_normalised": _mean([r["focal_normalised"] for r in rows]),
                "background_per_capita_return": _mean(
                    [r["background_per_capita_return"] for r in rows]
                ),
                "efficiency": _mean([r["efficiency"] for r in rows]),
                "equality": _mean([r["equality"] for r in rows]),
                "focal": _group([r["focal"] for r in rows]),
                "background": _group([r["background"] for r in rows if r["background"]]),
                "chats": {
                    way: {k: sum(r["chats"][way][k] for r in rows) for k in ("ok", "failed")}
                    for way in ("focal_to_background", "background_to_focal")
                },
            }
        )
    return out


def _mean(values: list) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def _group(groups: list[dict]) -> dict | None:
    if not groups:
        return None
    return {
        "on_time_rate": _mean([g["on_time_rate"] for g in groups]),
        **{
            key: sum(g[key] for g in groups)
            for key in ("agents", "late_help_received", "late_help_given", "faints")
        },
    }


def evaluate_runs(
    paths: list[Path],
    overrides: list[str],
    partners: dict[str, Path],
    episodes: int,
    seed: int | None,
) -> dict:
    """Each run's policy in every held-out population: beside scripted, random, the given
    partners and the policies of the other runs (e.g. other seeds it never met)."""
    from townlet.policy.evaluate import checkpoint_policy

    files = [policy_file(p) for p in paths]
    reports = []
    for path in files:
        config, net = checkpoint_policy(path, overrides)
        others = {run_label(o): o for o in files if o != path}
        report = evaluate_populations(
            config,
            net,
            {**partners, **others},
            episodes,
            config.seed + 1000 if seed is None else seed,
        )
        for row in report["populations"]:
            row["partner_is_run"] = row["partner"] in others
        reports.append({"focal": run_label(path), **report})
    return {
        "scenario": reports[0]["scenario"],
        "episodes": episodes,
        "runs": reports,
        "summary": summarise(reports),
        "town_scripted_per_capita": reports[0]["town_scripted_per_capita"],
        "town_random_per_capita": reports[0]["town_random_per_capita"],
    }


def populations_table(rows: list[dict]) -> str:
    """One line per population: the focal and background figures side by side."""
    header = (
        f"{'mode':<10}{'partner':<22}{'n':>3}{'focal':>8}{'95% interval':>18}{'norm':>7}"
        f"{'backgr':>8}{'effic':>8}{'equal':>7}{'on time f/b':>13}{'help f->b':>10}"
        f"{'chats f<->b':>12}{'faints f/b':>11}"
    )
    lines = [header]
    for row in rows:
        interval = row["focal_interval"]
        focal, back = row["focal"], row["background"] or {}
        chats = row["chats"]
        lines.append(
            f"{row['mode']:<10}{row['partner'][:21]:<22}{row.get('n', 1):>3}"
            f"{_num(row['focal_per_capita_return']):>8}"
            f"{'-' if interval is None else f'[{interval[0]:.3f}, {interval[1]:.3f}]':>18}"
            f"{_num(row['focal_normalised'], 2):>7}"
            f"{_num(row['background_per_capita_return']):>8}"
            f"{_num(row['efficiency'], 2):>8}{_num(row['equality'], 2):>7}"
            f"{_pair(focal.get('on_time_rate'), back.get('on_time_rate')):>13}"
            f"{focal['late_help_given']:>5}->{back.get('late_help_received', 0):<3}"
            f"{chats['focal_to_background']['ok'] + chats['background_to_focal']['ok']:>12}"
            f"{_pair(focal['faints'], back.get('faints'), 0):>11}"
        )
    return "\n".join(lines)


def _num(value: float | None, places: int = 3) -> str:
    return "-" if value is None else f"{value:.{places}f}"


def _pair(a, b, places: int = 2) -> str:
    return f"{_num(a, places)}/{_num(b, places)}"


def plot_populations(report: dict, output: Path) -> Path:
    """Focal per-capita return per mode and partner, with its 95% interval over episodes, and
    the town's all-scripted and all-random figures as reference lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["summary"]
    partners = list(dict.fromkeys(r["partner"] for r in rows if r["mode"] != "all focal"))
    modes = [m for m in MODES if any(r["mode"] == m for r in rows)]
    figure, ax = plt.subplots(figsize=(max(7.0, 1.6 * len(modes) * max(1, len(partners))), 4.6))
    width = 0.8 / max(1, len(partners))
    for k, partner in enumerate(partners):
        xs, ys, low, high = [], [], [], []
        for m, mode in enumerate(modes):
            row = next((r for r in rows if r["mode"] == mode and r["partner"] == partner), None)
            if row is None or row["focal_per_capita_return"] is None:
                continue
            value, interval = row["focal_per_capita_return"], row["focal_interval"] or [None] * 2
            xs.append(m + (k - (len(partners) - 1) / 2) * width)
            ys.append(value)
            low.append(value - interval[0] if interval[0] is not None else 0.0)
            high.append(interval[1] - value if interval[1] is not None else 0.0)
        ax.bar(xs, ys, width * 0.9, yerr=[low, high], capsize=4, label=f"beside {partner}")
    own = next(r for r in rows if r["mode"] == "all focal")
    ax.axhline(own["focal_per_capita_return"], color="black", lw=1.2, label="all focal (its town)")
    for key, style, label in (
        ("town_scripted_per_capita", "--", "all scripted"),
        ("town_random_per_capita", ":", "all random"),
    ):
        if report.get(key) is not None:
            ax.axhline(report[key], color="grey", ls=style, lw=1, label=label)
    ax.set_xticks(range(len(modes)), modes)
    ax.set(
        title=f"{report['scenario']}: focal per-capita return by population "
        f"({len(report['runs'])} runs x {report['episodes']} episodes, 95% intervals)",
        ylabel="return per agent-episode",
    )
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7, loc="lower left")
    figure.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=110)
    plt.close(figure)
    return output

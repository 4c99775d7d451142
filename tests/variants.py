"""Other lives for a scenario's agents, built from their scripts: what the reward must rank.

A reward is only right if it ranks lives as a person would. These variants are the lives PPO
settled into before commit 537cce9 (2026-11-30), and the half-lives in between: the
scenario's routine must outscore each of them (asserted by the tests, printed by
`benchmarks/learning.py`).
"""

from __future__ import annotations

from townlet.config.schema import IntentConfig, ScenarioConfig

VARIANTS = ("stay_home_and_eat", "work_never_sleep", "never_work", "arrive_then_leave")


def _types(scenario: ScenarioConfig) -> dict[str, str]:
    return {placement.name: placement.type for placement in scenario.affordances}


def _is_work(intent: IntentConfig, types: dict[str, str]) -> bool:
    return intent.do == "go_to" and types.get(intent.target or "") == "Job"


def variant_scripts(scenario: ScenarioConfig, variant: str) -> list[list[IntentConfig]]:
    """Each agent's script for `variant` (one of VARIANTS)."""
    types = _types(scenario)
    meals = [n for n, t in types.items() if t == "Stove"] or [
        n for n, t in types.items() if t == "Fridge"
    ]
    scripts = []
    for agent in scenario.agents:
        script = list(agent.script)
        if variant == "stay_home_and_eat":  # what PPO learned before 537cce9: eat, nothing else
            meal = meals[0]
            script = [
                IntentConfig(do="use", target=meal),
                *(
                    step
                    for hour in (10, 14, 18, 22)
                    for step in (
                        IntentConfig(do="wait_until", hour=hour),
                        IntentConfig(do="use", target=meal),
                    )
                ),
            ]
        elif variant == "work_never_sleep":
            script = [i for i in script if not (i.do == "use" and types.get(i.target) == "Bed")]
        elif variant == "arrive_then_leave":  # on time, then off to the rest of the day
            script = [
                i
                for k, i in enumerate(script)
                if not (i.do == "wait_until" and k > 0 and _is_work(script[k - 1], types))
            ]
        elif variant == "never_work":
            kept, skip_wait = [], False
            for intent in script:
                if _is_work(intent, types):
                    skip_wait = True
                    continue
                if skip_wait and intent.do in ("wait", "wait_until"):
                    continue
                skip_wait = False
                kept.append(intent)
            script = kept
        else:
            raise ValueError(f"unknown variant '{variant}' (variants: {', '.join(VARIANTS)})")
        scripts.append(script)
    return scripts


def week_variants(config) -> dict:
    """Weekly lives for `town_week`, each a copy of `config` whose agents live it every day:
    the one-day town's routine (what a one-day policy knows: one Bed a night, about half the
    food a day needs) and that routine without sleep."""
    import copy

    one_day = {
        "alice": ["fridge", "shower", "go:office", 17, "cafe", "park", "bed_1"],
        "bob": ["stove", "go:office", 17, "bar", "fridge", "bed_2"],
        "carol": ["fridge", "go:shop", 16, "park", "cafe", "shower", "bed_1"],
        "dave": ["fridge", "go:shop", 16, "shower", "stove", "bar", "bed_2"],
    }
    sleepless = {a: [s for s in day if not str(s).startswith("bed")] for a, day in one_day.items()}
    lives = {}
    for name, steps in (("one-day routine every day", one_day), ("never sleep", sleepless)):
        life = copy.deepcopy(config)
        for agent in life.scenario.agents:
            agent.script = agent.day_off_script = _intents(steps[agent.id])
        lives[name] = life
    return lives


def _intents(steps: list) -> list[IntentConfig]:
    intents = []
    for step in steps:
        if isinstance(step, int):
            intents.append(IntentConfig(do="wait_until", hour=float(step)))
        elif step.startswith("go:"):
            intents.append(IntentConfig(do="go_to", target=step[3:]))
        else:
            intents.append(IntentConfig(do="use", target=step))
    return intents

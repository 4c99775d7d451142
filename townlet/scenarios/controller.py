"""The scripted controller: each agent's list of intents becomes primitive actions, tick by tick.

Intents (see `IntentConfig`):
- `go_to` target | pos: walk a shortest path around walls (BFS distance field to the tile).
- `use` target: walk there, INTERACT, wait in the queue and through the interaction until it
  completes (`ticks`, when given, is how long to keep trying to get served before giving up;
  a queued agent that gives up stays queued until a `leave_queue` or a move).
- `wait` ticks: WAIT that many ticks.
- `wait_until` hour: WAIT until that hour of day comes round.
- `leave_queue`: step off the tile when queued or interacting.
- `chat` target (an agent id): walk next to that agent and INTERACT once (the world pairs a
  chatter with the neighbour it knows best; `ticks`, when given, bounds the walk).
When the script runs out the agent WAITs. In a multi-day scenario every agent's script starts
again at the start hour of each day: its `script` on the days its job runs, its `day_off_script`
(when it has one) on the others. The controller is deterministic: it is a behaviour policy with
probability 1 on the action it returns.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import torch

from townlet.config.choices import IntentKind
from townlet.config.schema import IntentConfig
from townlet.world import Action, ConfigError, StepResult, World
from townlet.world.layout import hour_to_tick

INTENTS = tuple(IntentKind)
_MOVES = (Action.UP, Action.DOWN, Action.LEFT, Action.RIGHT)
_STEP = {Action.UP: (0, -1), Action.DOWN: (0, 1), Action.LEFT: (-1, 0), Action.RIGHT: (1, 0)}
_MAX_INTENTS_PER_TICK = 64


@dataclass
class _Cursor:
    """Where one agent is in its script."""

    index: int = 0
    elapsed: int = 0  # ticks spent on the current intent
    wait_left: int | None = None
    completed: bool = False  # a `use` saw its completion
    anchor: tuple[int, int] | None = None  # where the last go_to left the agent (anchored)


@dataclass(frozen=True)
class _Intent:
    """An intent as plain values: the controller reads them every tick for every agent, and
    an attribute of a config node took 25 us (300,000 reads, 2 of the default town's 2.8 s
    of demonstrations; measured 2026-12-07)."""

    do: str
    target: str | None
    pos: tuple[int, int] | None
    ticks: int | None
    hour: float | None

    @classmethod
    def of(cls, intent: IntentConfig) -> _Intent:
        pos = None if intent.pos is None else (int(intent.pos[0]), int(intent.pos[1]))
        return cls(intent.do, intent.target, pos, intent.ticks, intent.hour)


def validate_scripts(world: World, scripts: list[list[IntentConfig]], scenario: str) -> None:
    """Fail at load on a script that cannot mean anything, naming scenario, agent and key."""
    agents = world.scenario.agents
    for index, (agent, script) in enumerate(zip(world.layout.agent_ids, scripts, strict=True)):
        _check_script(world, script, f"scenario '{scenario}': agent '{agent}': script")
        if index < len(agents) and agents[index].day_off_script:
            where = f"scenario '{scenario}': agent '{agent}': day_off_script"
            _check_script(world, agents[index].day_off_script, where)


def _check_script(world: World, script: list[IntentConfig], name: str) -> None:
    layout = world.layout
    interactable = dict(zip(layout.instance_names, layout.inst_interactable.tolist(), strict=True))
    for i, intent in enumerate(script):
        where = f"{name}[{i}]"
        if intent.do not in INTENTS:
            raise ConfigError(
                f"{where}.do: unknown intent '{intent.do}' (intents: {', '.join(INTENTS)})"
            )
        if intent.do in ("go_to", "use"):
            if intent.target is None and (intent.do == "use" or intent.pos is None):
                raise ConfigError(f"{where}: '{intent.do}' needs a target")
            if intent.target is not None and intent.target not in interactable:
                known = ", ".join(layout.instance_names) or "none"
                unknown = f"unknown affordance '{intent.target}'"
                raise ConfigError(f"{where}.target: {unknown} (affordances: {known})")
            if intent.do == "use" and not interactable[intent.target]:
                raise ConfigError(f"{where}.target: '{intent.target}' is a workplace; use go_to")
            if intent.pos is not None:
                x, y = intent.pos
                if (x, y) in layout.walls or not (0 <= x < layout.width and 0 <= y < layout.height):
                    raise ConfigError(f"{where}.pos: {list(intent.pos)} is not a floor tile")
        if intent.do == "chat" and intent.target not in layout.agent_ids:
            known = ", ".join(layout.agent_ids)
            raise ConfigError(f"{where}.target: 'chat' needs an agent id ({known})")
        if intent.do == "wait" and (intent.ticks is None or intent.ticks < 0):
            raise ConfigError(f"{where}.ticks: 'wait' needs ticks >= 0")
        if intent.do == "wait_until" and (intent.hour is None or not 0 <= intent.hour < 24):
            raise ConfigError(f"{where}.hour: 'wait_until' needs an hour in [0, 24)")


class ScriptedController:
    """Acts for every agent of every env of a world from their scripts.

    `anchored`: after a `go_to`, the `wait`/`wait_until` intents that follow walk back to that
    tile when the agent is off it (a scripted worker knocked off its job goes back), which
    makes the script a teacher that can label states it would never reach by itself."""

    def __init__(
        self, world: World, scripts: list[list[IntentConfig]], anchored: bool = False
    ) -> None:
        layout = world.layout
        if len(scripts) != layout.num_agents:
            raise ValueError(f"{len(scripts)} scripts for {layout.num_agents} agents")
        self.world = world
        self.scripts = scripts = [[_Intent.of(i) for i in script] for script in scripts]
        self.anchored = anchored
        self.cursors = [[_Cursor() for _ in scripts] for _ in range(world.num_envs)]
        # a multi-day scenario: each env's day, and each agent's script for it
        self.daily = world.scenario.days > 1
        agents = world.scenario.agents
        self.day_off_scripts = [
            [_Intent.of(step) for step in agents[i].day_off_script] or script
            if i < len(agents)
            else script
            for i, script in enumerate(scripts)
        ]
        self._day = [-1] * world.num_envs
        self._today = [list(scripts) for _ in range(world.num_envs)]
        walls = set(layout.walls)
        self._floor = {
            (x, y) for x in range(layout.width) for y in range(layout.height) if (x, y) not in walls
        }
        self._instance_xy = dict(zip(layout.instance_names, layout.inst_xy, strict=True))
        self._agent_index = {agent: i for i, agent in enumerate(layout.agent_ids)}
        self._here: list[tuple[int, int]] = []  # the env's agent positions this tick
        self._distance: dict[tuple[int, int], dict[tuple[int, int], int]] = {}

    # ------------------------------------------------------------------ public
    def act(self) -> torch.Tensor:
        """(E, A) int64 actions for the current state."""
        world = self.world
        positions = world.positions().tolist()
        using, queued = world.state.using.tolist(), world.state.queued.tolist()
        alive = world.state.alive.tolist()
        tods = world.time_of_day().tolist()
        if self.daily:
            self._start_days()
        rows = []
        for env, cursors in enumerate(self.cursors):
            actions = []
            self._here = [tuple(xy) for xy in positions[env]]
            for agent in range(len(cursors)):
                if not alive[env][agent]:
                    actions.append(Action.WAIT)
                    continue
                busy = using[env][agent] >= 0
                state = "using" if busy else "queued" if queued[env][agent] >= 0 else "free"
                pos = tuple(positions[env][agent])
                actions.append(self._agent_action(env, agent, pos, state, int(tods[env])))
            rows.append([int(a) for a in actions])
        return torch.tensor(rows, dtype=torch.int64)

    def update(self, result: StepResult) -> None:
        """Tell the controller what happened, so `use` intents know they completed."""
        completed = result.events.completed.tolist()
        for env, cursors in enumerate(self.cursors):
            for agent, cursor in enumerate(cursors):
                cursor.elapsed += 1
                if completed[env][agent] >= 0:
                    cursor.completed = True

    def restart(self, env: int) -> None:
        """Start every script of `env` again from its first intent (its world was reset)."""
        self.cursors[env] = [_Cursor() for _ in self.scripts]
        self._day[env] = -1

    # ------------------------------------------------------------------ internals
    def _start_days(self) -> None:
        """At each env's day boundary (its start hour), every agent's script for the new day
        starts from its first intent."""
        state, tpd = self.world.state, self.world.layout.ticks_per_day
        days = ((state.tick + state.start_offset) // tpd).tolist()
        works = self.world.works_today().tolist()
        for env, day in enumerate(days):
            if day == self._day[env]:
                continue
            self._day[env] = day
            self._today[env] = [
                self.scripts[i] if works[env][i] else self.day_off_scripts[i]
                for i in range(len(self.scripts))
            ]
            self.cursors[env] = [_Cursor() for _ in self.scripts]

    def _agent_action(self, env: int, agent: int, pos, state: str, tod: int) -> Action:
        script, cursor = self._today[env][agent], self.cursors[env][agent]
        for _ in range(_MAX_INTENTS_PER_TICK):
            if cursor.index >= len(script):
                return self._back_to_anchor(cursor, pos)
            intent = script[cursor.index]
            if intent.do in ("wait", "wait_until") and state == "free":
                back = self._back_to_anchor(cursor, pos)
                if back != Action.WAIT:
                    return back
            action = self._intent_action(intent, cursor, pos, state, tod)
            if action is not None:
                return action
            anchor = self._target(intent) if intent.do == "go_to" else cursor.anchor
            if intent.do == "use":
                anchor = None
            self.cursors[env][agent] = cursor = _Cursor(index=cursor.index + 1, anchor=anchor)
        return Action.WAIT

    def _back_to_anchor(self, cursor: _Cursor, pos) -> Action:
        """With `anchored`, the step back to the last go_to's tile (WAIT when there)."""
        if not self.anchored or cursor.anchor is None or pos == cursor.anchor:
            return Action.WAIT
        return self._step_towards(pos, cursor.anchor)

    def _intent_action(
        self, intent: _Intent, cursor: _Cursor, pos, state: str, tod: int
    ) -> Action | None:
        """The action for this tick, or None when the intent is done. `state` is the agent's
        affordance state: using, queued or free."""
        busy = state != "free"
        if intent.do == "go_to":
            target = self._target(intent)
            return None if pos == target else self._step_towards(pos, target)
        if intent.do == "use":
            target = self._target(intent)
            if cursor.completed and not busy:
                return None
            if intent.ticks is not None and cursor.elapsed >= intent.ticks and state != "using":
                return None  # gave up before getting served (the agent may still be queued)
            if pos != target:
                return self._step_towards(pos, target)
            return Action.WAIT if busy else Action.INTERACT
        if intent.do == "wait":
            if cursor.wait_left is None:
                cursor.wait_left = int(intent.ticks)
            if cursor.wait_left <= 0:
                return None
            cursor.wait_left -= 1
            return Action.WAIT
        if intent.do == "wait_until":
            tpd = self.world.layout.ticks_per_day
            if cursor.wait_left is None:
                cursor.wait_left = (hour_to_tick(intent.hour, tpd) - tod) % tpd
            if cursor.wait_left <= 0:
                return None
            cursor.wait_left -= 1
            return Action.WAIT
        if intent.do == "chat":
            if cursor.wait_left == 0:
                return None  # chatted last tick
            other = self._here[self._agent_index[intent.target]]
            if abs(pos[0] - other[0]) + abs(pos[1] - other[1]) <= 1:
                cursor.wait_left = 0
                return Action.INTERACT
            if intent.ticks is not None and cursor.elapsed >= intent.ticks:
                return None
            return self._step_towards(pos, other)
        if intent.do == "leave_queue":
            if not busy:
                return None
            for move in _MOVES:
                dx, dy = _STEP[move]
                if (pos[0] + dx, pos[1] + dy) in self._floor:
                    return move
            return None
        raise ValueError(f"unknown intent {intent.do!r}")

    def _target(self, intent: _Intent) -> tuple[int, int]:
        if intent.target is not None:
            return self._instance_xy[intent.target]
        return intent.pos

    def _step_towards(self, pos, target) -> Action:
        distance = self._distance_field(target)
        best, best_move = distance.get(pos), Action.WAIT
        for move in _MOVES:
            dx, dy = _STEP[move]
            d = distance.get((pos[0] + dx, pos[1] + dy))
            if d is not None and (best is None or d < best):
                best, best_move = d, move
        return best_move

    def _distance_field(self, target) -> dict[tuple[int, int], int]:
        """Tiles -> steps to `target` around walls (BFS), cached per target."""
        if target not in self._distance:
            field = {target: 0}
            frontier = deque([target])
            while frontier:
                x, y = frontier.popleft()
                for dx, dy in _STEP.values():
                    nxt = (x + dx, y + dy)
                    if nxt in self._floor and nxt not in field:
                        field[nxt] = field[(x, y)] + 1
                        frontier.append(nxt)
            self._distance[target] = field
        return self._distance[target]

"""Compile a (world, scenario) config pair into the static tensors the step reads.

Everything that does not change during an episode is resolved here once: names, the padded
walkability and code maps, per-instance tables (capacity, duration, cost, effects, hours,
stock), per-agent job tables and the flat-index move deltas. Semantic errors that a schema
cannot see (a wall under an agent, an effect on an unknown meter) are raised here, naming the
scenario, the agent and the key.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from townlet.config.errors import ConfigError
from townlet.config.schema import AffordanceTypeConfig, ScenarioConfig, WorldConfig
from townlet.util.event_codes import ShiftEvent
from townlet.world.constants import (
    ACTION_DELTAS,
    MAX_CODE,
    OCCUPANT_KINDS,
    TERRAIN_FLOOR,
    TERRAIN_WALL,
    ShiftPhase,
    terrain_code,
    terrain_names,
)
from townlet.world.social_tables import compile_social

UNLIMITED_STOCK = 2**30


@dataclass(frozen=True)
class Layout:
    """Static description of one town, shared by every environment of a batched world."""

    # names
    scenario_name: str
    meter_names: tuple[str, ...]
    affordance_types: tuple[str, ...]
    instance_names: tuple[str, ...]
    agent_ids: tuple[str, ...]
    terrain_names: tuple[str, ...]
    # geometry
    width: int
    height: int
    radius: int
    padded_width: int
    padded_height: int
    walls: tuple[tuple[int, int], ...]
    walkable: torch.Tensor  # (cells + 1,) bool, last = sink for fainted agents
    base_codes: torch.Tensor  # (cells + 1,) uint8, terrain * OCCUPANT_KINDS
    tile_instance: torch.Tensor  # (cells + 1,) int64, -1 where no affordance
    move_delta: torch.Tensor  # (actions,) int64 in flat padded cells
    window_offsets: torch.Tensor  # (window * window,) int64
    # instances
    inst_cell: torch.Tensor  # (N,) int64
    inst_xy: tuple[tuple[int, int], ...]
    inst_type: torch.Tensor  # (N,) int64
    inst_capacity: torch.Tensor  # (N,) int64
    inst_duration: torch.Tensor  # (N,) int64
    inst_stock: torch.Tensor  # (N,) int64
    inst_interactable: torch.Tensor  # (N,) bool
    inst_idle_code: torch.Tensor  # (N,) int64 terrain code when idle
    inst_delta: torch.Tensor  # (N, M) float32 meter change on completion, cost included
    inst_rate: torch.Tensor  # (N, M) float32 effects earned per tick of the interaction
    inst_start_delta: torch.Tensor  # (N, M) float32 meter change on starting (the cost)
    effects_per_tick: bool  # effects accrue per tick (else all on completion, cost included)
    # agents
    start_cell: torch.Tensor  # (A,) int64
    initial_meters: torch.Tensor  # (A, M) float32
    has_job: torch.Tensor  # (A,) bool
    job_cell: torch.Tensor  # (A,) int64 (sink when no job)
    wage: torch.Tensor  # (A,) float32
    late_penalty: torch.Tensor  # (A,) float32
    absent_penalty: torch.Tensor  # (A,) float32
    # per (agent, tick of day) lookup tables, flat: index = agent * ticks_per_day + tod
    agent_tod_base: torch.Tensor  # (A,) int64
    shift_phase: torch.Tensor  # (A * tpd,) int64 ShiftPhase
    shift_last_tick: torch.Tensor  # (A * tpd,) bool: the shift's final tick
    shift_in_progress: torch.Tensor  # (A * tpd,) bool: inside the shift window
    shift_arrival_kind: torch.Tensor  # (A * tpd,) int64 ShiftEvent an arrival now would be
    late_charge: torch.Tensor  # (A * tpd,) float32 late penalty due at this tick if not on time
    absence_charge: torch.Tensor  # (A * tpd,) float32 penalty for this tick if not at work
    commute_active: torch.Tensor  # (A * tpd,) bool: the commute window is open
    job_distance: torch.Tensor  # (A * (cells + 1),) float32 path distance to work / longest
    bed_distance: torch.Tensor  # (A * (cells + 1),) float32 path distance to its bed / longest
    clock_features: torch.Tensor  # (A * tpd, 3) float32: time sin, time cos, shift starts in
    shift_deadline_in: torch.Tensor  # (A * tpd,) float32 ticks to the last on-time tick (<0: past)
    job_ticks: torch.Tensor  # (A * (cells + 1),) float32 walking ticks from the cell to work
    shift_active_at: torch.Tensor  # (tpd,) bool: some agent's shift runs at this tick of day
    agent_cell_base: torch.Tensor  # (A,) int64 = agent * (cells + 1)
    cell_features: torch.Tensor  # (A * (cells + 1), K) float32, named by cell_feature_names
    cell_feature_names: tuple[str, ...]
    noncritical_offset: torch.Tensor  # (M,) float32: 0 for critical meters, 2 otherwise
    tod_of_tick: torch.Tensor  # (episode_ticks + tpd + 1,) int64 tick of day by tick + offset
    open_here: (
        torch.Tensor
    )  # (tpd * (cells + 1),) bool: an interactable, open affordance on the cell
    cost_here: torch.Tensor  # (cells + 1,) float32 cost of the affordance on the cell
    # social life (see social.py and social_tables.py)
    self_pair: torch.Tensor  # (A, A) bool identity: nobody chats with or helps itself
    # pairs by the difference of their flat cells (+ cells + 1): unique for every pair of tiles
    # inside the grid, because the padding is at least as wide as the window's radius
    near_by_offset: torch.Tensor  # (2 * (cells + 1) + 1,) bool: same tile or 4-neighbours
    in_view_by_offset: torch.Tensor  # (2 * (cells + 1) + 1,) bool: inside the window
    coworkers: torch.Tensor  # (A, A) bool: another agent with the same workplace
    initial_familiarity: torch.Tensor  # (A, A) float32
    initial_rivalry: torch.Tensor  # (A, A) float32
    meal_type: torch.Tensor  # (T,) bool: the affordance type feeds (raises satiation)
    utility_names: tuple[str, ...]  # utilities with an outage (scheduled or random)
    outage_active: torch.Tensor  # (tpd, U) float32: 1 while the utility is out on schedule
    random_chance: torch.Tensor  # (U,) float64 chance a tick that a random outage begins
    random_ticks: torch.Tensor  # (U,) int64 ticks a random outage lasts (0: none)
    utility_instances: torch.Tensor  # (U, N) bool: the instances each utility powers
    hours_names: tuple[str, ...]  # affordance types that keep hours (open_cafe, ...)
    hours_open: torch.Tensor  # (tpd, H) float32: 1 while some instance of the type is open
    outage_starts: torch.Tensor  # (tpd,) int64 outages starting at this tick of day
    # meters (their decay and reward weights are `Tunables`)
    money_index: int  # -1 when the town has no money meter
    social_index: int  # -1 when the town has no social meter
    # time
    ticks_per_day: int
    start_tick: int
    episode_ticks: int
    random_outages: bool = False  # some utility goes out at random (scenario.random_outages)

    @property
    def num_agents(self) -> int:
        return len(self.agent_ids)

    @property
    def num_meters(self) -> int:
        return len(self.meter_names)

    @property
    def window(self) -> int:
        return 2 * self.radius + 1

    @property
    def sink_cell(self) -> int:
        return self.padded_width * self.padded_height

    def xy_of(self, cells: torch.Tensor) -> torch.Tensor:
        """Grid (x, y) of flat padded cells, stacked on a new last dim."""
        x = cells % self.padded_width - self.radius
        y = cells // self.padded_width - self.radius
        return torch.stack((x, y), dim=-1)


def hour_to_tick(hour: float, ticks_per_day: int) -> int:
    return int(round(hour * ticks_per_day / 24.0))


def _wall_tiles(scenario: ScenarioConfig) -> set[tuple[int, int]]:
    tiles: set[tuple[int, int]] = set()
    for i, entry in enumerate(scenario.walls):
        where = f"scenario '{scenario.name}': walls[{i}]"
        if len(entry) == 2:
            x0, y0 = x1, y1 = entry
        elif len(entry) == 4:
            x0, y0, x1, y1 = entry
        else:
            raise ConfigError(f"{where}: expected [x, y] or [x0, y0, x1, y1], got {list(entry)}")
        for x in range(min(x0, x1), max(x0, x1) + 1):
            for y in range(min(y0, y1), max(y0, y1) + 1):
                _check_in_grid(scenario, (x, y), where)
                tiles.add((x, y))
    return tiles


def _check_in_grid(scenario: ScenarioConfig, xy: tuple[int, int], where: str) -> None:
    x, y = xy
    if not (0 <= x < scenario.width and 0 <= y < scenario.height):
        raise ConfigError(
            f"{where}: position [{x}, {y}] is outside the {scenario.width}x{scenario.height} grid"
        )


def _xy(scenario: ScenarioConfig, pos: list[int], where: str) -> tuple[int, int]:
    if len(pos) != 2:
        raise ConfigError(f"{where}: pos must be [x, y], got {list(pos)}")
    xy = (int(pos[0]), int(pos[1]))
    _check_in_grid(scenario, xy, where)
    return xy


def meter_vector(
    values: dict[str, float], meter_index: dict[str, int], where: str, default: float = 0.0
) -> list[float]:
    vec = [default] * len(meter_index)
    for name, value in values.items():
        if name not in meter_index:
            raise ConfigError(f"{where}: unknown meter '{name}' (meters: {', '.join(meter_index)})")
        vec[meter_index[name]] = float(value)
    return vec


def _posted_hours(
    world, types, inst_type, specs, inst_open, open_now: list[torch.Tensor], tpd: int
) -> tuple[list, torch.Tensor]:
    """The affordance types that keep hours and (tpd, H) whether one of each is open (none
    unless world.observation.opening_hours): types chosen by their hours (`inst_open`), values
    from each instance's (tpd,) openness that day (`open_now`, closures included)."""
    names: list[str] = []
    if world.observation.opening_hours:
        names = sorted(
            {
                types[t]
                for i, t in enumerate(inst_type)
                if not specs[i].workplace and not all(inst_open[i])
            }
        )
    hours_open = torch.zeros(tpd, len(names))
    for i, t in enumerate(inst_type):
        if types[t] in names:
            column = names.index(types[t])
            hours_open[:, column] = torch.maximum(hours_open[:, column], open_now[i].float())
    return names, hours_open


def _open_ticks(open_hour: float, close_hour: float, ticks_per_day: int, where: str) -> list[bool]:
    for key, hour in (("open_hour", open_hour), ("close_hour", close_hour)):
        if not 0.0 <= hour <= 24.0:
            raise ConfigError(f"{where}.{key}: {hour} is not an hour in [0, 24]")
    start, end = hour_to_tick(open_hour, ticks_per_day), hour_to_tick(close_hour, ticks_per_day)
    if start == end or (start == 0 and end == ticks_per_day):
        return [True] * ticks_per_day
    if start < end:
        return [start <= t < end for t in range(ticks_per_day)]
    return [t >= start or t < end for t in range(ticks_per_day)]


def _check_catalogue(world: WorldConfig) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The world's meters and affordance types, after checking what the schema cannot."""
    tpd = world.ticks_per_day
    if tpd <= 0:
        raise ConfigError(f"world.ticks_per_day: must be positive, got {tpd}")
    window = world.observation.window
    if window < 1 or window % 2 == 0:
        raise ConfigError(f"world.observation.window: must be odd and positive, got {window}")
    if not world.meters:
        raise ConfigError("world.meters: at least one meter is required")
    meter_names, types = tuple(world.meters), tuple(world.affordances)
    meter_index = {m: i for i, m in enumerate(meter_names)}
    if terrain_code(len(types), 0) * OCCUPANT_KINDS > MAX_CODE + 1:
        raise ConfigError(f"world.affordances: too many types ({len(types)}) for uint8 map codes")
    for m, meter in world.meters.items():
        if meter.decay < 0 or not 0.0 <= meter.initial <= 1.0:
            raise ConfigError(f"world.meters.{m}: decay must be >= 0 and initial in [0, 1]")
    for t, spec in world.affordances.items():
        where = f"world.affordances.{t}"
        if spec.capacity < 1:
            raise ConfigError(f"{where}.capacity: must be >= 1, got {spec.capacity}")
        if spec.duration < 1 and not spec.workplace:
            raise ConfigError(f"{where}.duration: must be >= 1 tick, got {spec.duration}")
        if spec.cost < 0:
            raise ConfigError(f"{where}.cost: must be >= 0, got {spec.cost}")
        meter_vector(spec.effects, meter_index, f"{where}.effects")
    meter_vector(world.reward.need_weights, meter_index, "world.reward.need_weights")
    if world.reward.clip_min > world.reward.clip_max:
        raise ConfigError("world.reward: clip_min must not exceed clip_max")
    if world.interaction_effects not in ("per_tick", "on_completion"):
        raise ConfigError(
            f"world.interaction_effects: '{world.interaction_effects}' is not one of "
            "per_tick, on_completion"
        )
    return meter_names, types


@dataclass
class _Grid:
    """The padded grid: walls, walkable cells, terrain and which instance stands where."""

    walls: set[tuple[int, int]]
    radius: int
    padded_width: int
    padded_height: int
    walkable: torch.Tensor  # (cells + 1,) bool; the last cell is the sink
    terrain: torch.Tensor  # (cells + 1,) int64 terrain code
    tile_instance: torch.Tensor  # (cells + 1,) int64 instance index, -1 none

    @property
    def cells(self) -> int:
        return self.padded_width * self.padded_height

    def cell(self, xy: tuple[int, int]) -> int:
        return (xy[1] + self.radius) * self.padded_width + (xy[0] + self.radius)


def _compile_grid(scenario: ScenarioConfig, radius: int) -> _Grid:
    if scenario.width <= 0 or scenario.height <= 0:
        raise ConfigError(f"scenario '{scenario.name}': width and height must be positive")
    walls = _wall_tiles(scenario)
    pw, ph = scenario.width + 2 * radius, scenario.height + 2 * radius
    cells = pw * ph
    grid = _Grid(
        walls=walls,
        radius=radius,
        padded_width=pw,
        padded_height=ph,
        walkable=torch.zeros(cells + 1, dtype=torch.bool),
        terrain=torch.full((cells + 1,), TERRAIN_WALL, dtype=torch.int64),
        tile_instance=torch.full((cells + 1,), -1, dtype=torch.int64),
    )
    for x in range(scenario.width):
        for y in range(scenario.height):
            if (x, y) not in walls:
                grid.walkable[grid.cell((x, y))] = True
                grid.terrain[grid.cell((x, y))] = TERRAIN_FLOOR
    return grid


@dataclass
class _Instances:
    """The scenario's affordance instances, in placement order."""

    names: list[str]
    xy: list[tuple[int, int]]
    type: list[int]  # index into the affordance types
    specs: list[AffordanceTypeConfig]
    effects: list[list[float]]  # meter deltas of a whole interaction
    open: list[list[bool]]  # (tpd,) open by its posted hours


def _place_instances(
    world: WorldConfig, scenario: ScenarioConfig, grid: _Grid, types: tuple[str, ...]
) -> _Instances:
    """Each placement on the grid (its terrain code and tile), checked."""
    name, type_index = scenario.name, {t: i for i, t in enumerate(types)}
    meter_index = {m: i for i, m in enumerate(world.meters)}
    names: list[str] = []
    xys: list[tuple[int, int]] = []
    kinds: list[int] = []
    for i, placement in enumerate(scenario.affordances):
        where = f"scenario '{name}': affordances[{i}] '{placement.name}'"
        if placement.type not in type_index:
            raise ConfigError(
                f"{where}: unknown affordance type '{placement.type}' (types: {', '.join(types)})"
            )
        if placement.name in names:
            raise ConfigError(f"{where}: duplicate affordance name")
        xy = _xy(scenario, placement.pos, where)
        if xy in grid.walls:
            raise ConfigError(f"{where}: pos {list(xy)} is on a wall")
        if xy in xys:
            raise ConfigError(f"{where}: pos {list(xy)} already holds '{names[xys.index(xy)]}'")
        grid.tile_instance[grid.cell(xy)] = len(names)
        grid.terrain[grid.cell(xy)] = terrain_code(type_index[placement.type])
        names.append(placement.name)
        xys.append(xy)
        kinds.append(type_index[placement.type])
    specs = [world.affordances[types[t]] for t in kinds]
    if "money" not in meter_index and any(s.cost > 0 for s in specs):
        raise ConfigError("world.affordances: costs need a meter named 'money' in world.meters")
    tpd = world.ticks_per_day
    return _Instances(
        names=names,
        xy=xys,
        type=kinds,
        specs=specs,
        effects=[
            meter_vector(s.effects, meter_index, f"world.affordances.{types[t]}.effects")
            for s, t in zip(specs, kinds, strict=True)
        ],
        open=[
            _open_ticks(s.open_hour, s.close_hour, tpd, f"world.affordances.{types[t]}")
            for s, t in zip(specs, kinds, strict=True)
        ],
    )


@dataclass
class _Agents:
    ids: list[str]
    start_cells: list[int]
    initial: list[list[float]]  # meters at the start
    jobs: list[JobShift]


def _place_agents(
    world: WorldConfig, scenario: ScenarioConfig, grid: _Grid, instances: _Instances
) -> _Agents:
    """Each agent's start tile, starting meters and job, checked."""
    name, meter_names = scenario.name, tuple(world.meters)
    base_meters = {m: spec.initial for m, spec in world.meters.items()}
    if not scenario.agents:
        raise ConfigError(f"scenario '{name}': no agents")
    agents = _Agents([], [], [], [])
    for i, agent in enumerate(scenario.agents):
        where = f"scenario '{name}': agent '{agent.id}' (agents[{i}])"
        if agent.id in agents.ids:
            raise ConfigError(f"{where}: duplicate agent id")
        xy = _xy(scenario, agent.pos, f"{where}.pos")
        if xy in grid.walls:
            raise ConfigError(f"{where}.pos: {list(xy)} is on a wall")
        for m, v in agent.meters.items():
            if m not in base_meters:
                raise ConfigError(
                    f"{where}.meters: unknown meter '{m}' (meters: {', '.join(meter_names)})"
                )
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"{where}.meters.{m}: {v} is outside [0, 1]")
        agents.initial.append([float(agent.meters.get(m, base_meters[m])) for m in meter_names])
        agents.ids.append(agent.id)
        agents.start_cells.append(grid.cell(xy))
        agents.jobs.append(
            _job_row(
                world,
                agent.job,
                instances.names,
                instances.xy,
                instances.specs,
                where,
                grid.cell,
                grid.cells,
            )
        )
    return agents


@dataclass
class _Compass:
    """Per (agent, cell): the features that point an agent to its workplace, its bed and the
    nearest affordance of each kind, and the path distances the shaping reads."""

    features: torch.Tensor  # (A * (cells + 1), F)
    names: tuple[str, ...]
    job_distance: torch.Tensor  # (A * (cells + 1),) scaled path distance to the workplace
    bed_distance: torch.Tensor  # (A * (cells + 1),) scaled path distance to the bed
    longest: float  # the path length distances are divided by


def _compass(
    world: WorldConfig,
    scenario: ScenarioConfig,
    grid: _Grid,
    instances: _Instances,
    agents: _Agents,
) -> _Compass:
    types = tuple(world.affordances)
    cells, cell, radius, pw = grid.cells, grid.cell, grid.radius, grid.padded_width
    walls, inst_names, inst_xy, inst_type = (
        grid.walls,
        instances.names,
        instances.xy,
        instances.type,
    )
    start_cells, job_rows = agents.start_cells, agents.jobs
    all_cells = torch.arange(cells + 1)
    xy = torch.stack(((all_cells % pw - radius).float(), (all_cells // pw - radius).float()), -1)
    xy /= torch.tensor([max(scenario.width - 1, 1), max(scenario.height - 1, 1)])
    places = PlaceFinder(scenario, walls, cell, cells)
    beds = [
        _bed_cell(agent, inst_names, inst_xy, inst_type, types, cell, places, start)
        for agent, start in zip(scenario.agents, start_cells, strict=True)
    ]
    findable = [t for t in types if not world.affordances[t].workplace]
    type_cells = {
        t: [cell(xy) for xy, k in zip(inst_xy, inst_type, strict=True) if types[k] == t]
        for t in findable
    }
    nearest = torch.cat([places.nearest(type_cells[t]) for t in findable], dim=1)
    cell_features = torch.cat(
        [
            torch.cat(
                (
                    xy,
                    (all_cells == job.cell).float().unsqueeze(1) * job.has_job,
                    places.toward(job.cell) * job.has_job,
                    places.toward(bed),
                    nearest,
                ),
                dim=1,
            )
            for job, bed in zip(job_rows, beds, strict=True)
        ]
    )
    cell_feature_names = (
        "pos_x",
        "pos_y",
        "at_workplace",
        *PlaceFinder.names("job"),
        *PlaceFinder.names("bed"),
        *(n for t in findable for n in PlaceFinder.names(f"nearest_{t.lower()}")[:2]),
    )
    job_distance = torch.cat([places.toward(job.cell)[:, 2] for job in job_rows])
    bed_distance = torch.cat([places.toward(bed)[:, 2] * (bed is not None) for bed in beds])
    return _Compass(cell_features, cell_feature_names, job_distance, bed_distance, places.longest)


def compile_layout(world: WorldConfig, scenario: ScenarioConfig) -> Layout:
    """Resolve configs into static tensors, raising ConfigError on anything inconsistent: the
    catalogue, the grid, the instances and the agents each have a compiler of their own; the
    tables the step reads are derived from them here."""
    name = scenario.name
    if scenario.ticks <= 0:
        raise ConfigError(f"scenario '{name}': ticks must be positive, got {scenario.ticks}")
    meter_names, types = _check_catalogue(world)
    meter_index = {m: i for i, m in enumerate(meter_names)}
    tpd = world.ticks_per_day
    radius = world.observation.window // 2
    grid = _compile_grid(scenario, radius)
    cells, cell = grid.cells, grid.cell
    instances = _place_instances(world, scenario, grid, types)
    inst_xy, inst_type, specs, inst_open = (
        instances.xy,
        instances.type,
        instances.specs,
        instances.open,
    )
    agents = _place_agents(world, scenario, grid, instances)
    job_rows = agents.jobs
    clock = _clock_tables(job_rows, tpd)
    social = compile_social(
        world,
        scenario,
        agents.ids,
        [job.cell for job in job_rows],
        [job.has_job for job in job_rows],
        [types[t] for t in inst_type],
        hour_to_tick,
    )
    # (tpd,) bool per instance: open by its hours and not closed by an event that day
    open_now = [torch.tensor(hours) & ~social.closed[:, i] for i, hours in enumerate(inst_open)]
    open_here = torch.zeros(tpd, cells + 1, dtype=torch.bool)
    cost_here = torch.zeros(cells + 1, dtype=torch.float32)
    for i, xy in enumerate(inst_xy):
        if not specs[i].workplace:
            open_here[:, cell(xy)] = open_now[i]
            cost_here[cell(xy)] = specs[i].cost
    hours_types, hours_open = _posted_hours(
        world, types, inst_type, specs, inst_open, open_now, tpd
    )
    start_tick = hour_to_tick(scenario.start_hour, tpd) % tpd
    compass = _compass(world, scenario, grid, instances, agents)
    lead = hour_to_tick(world.reward.commute_lead_hours, tpd)
    commute_active = torch.cat([_commute_window(job, lead, tpd) for job in job_rows])
    late_charge, absence_charge = _shift_charges(job_rows, tpd)

    return Layout(
        scenario_name=name,
        meter_names=meter_names,
        affordance_types=types,
        instance_names=tuple(instances.names),
        agent_ids=tuple(agents.ids),
        width=scenario.width,
        height=scenario.height,
        **_grid_fields(grid, radius, types),
        **_instance_fields(world, types, instances, grid, meter_names),
        **_agent_fields(agents, clock, grid.cells, tpd),
        cell_features=compass.features,
        cell_feature_names=compass.names,
        late_charge=late_charge,
        absence_charge=absence_charge,
        commute_active=commute_active,
        job_distance=compass.job_distance,
        bed_distance=compass.bed_distance,
        job_ticks=compass.job_distance * compass.longest,
        noncritical_offset=torch.tensor(
            [0.0 if world.meters[m].critical else 2.0 for m in meter_names], dtype=torch.float32
        ),
        tod_of_tick=(torch.arange(scenario.ticks + tpd + 1, dtype=torch.int64) + start_tick) % tpd,
        open_here=open_here.reshape(-1),
        cost_here=cost_here,
        self_pair=torch.eye(len(agents.ids), dtype=torch.bool),
        coworkers=social.coworkers,
        initial_familiarity=social.familiarity,
        initial_rivalry=social.rivalry,
        utility_names=social.utility_names,
        outage_active=social.outage_active,
        random_chance=social.random_chance,
        random_ticks=social.random_ticks,
        utility_instances=social.utility_instances,
        hours_names=tuple(f"open_{name.lower()}" for name in hours_types),
        hours_open=hours_open,
        outage_starts=social.outage_starts,
        money_index=meter_index.get("money", -1),
        social_index=meter_index.get("social", -1),
        ticks_per_day=tpd,
        start_tick=start_tick,
        episode_ticks=scenario.ticks,
        random_outages=bool(social.random_ticks.any()) and bool(inst_type),
    )


def _grid_fields(grid: _Grid, radius: int, types: tuple[str, ...]) -> dict[str, Any]:
    """The layout's fields about the grid: terrain, walls, moves and the offsets of views."""
    pw, cells = grid.padded_width, grid.cells
    span = range(-radius, radius + 1)
    square = [(dx, dy) for dx in span for dy in span]
    return {
        "terrain_names": terrain_names(types),
        "radius": radius,
        "padded_width": pw,
        "padded_height": grid.padded_height,
        "walls": tuple(sorted(grid.walls)),
        "walkable": grid.walkable,
        "base_codes": (grid.terrain * OCCUPANT_KINDS).to(torch.uint8),
        "tile_instance": grid.tile_instance,
        "move_delta": torch.tensor([dx + dy * pw for dx, dy in ACTION_DELTAS], dtype=torch.int64),
        "window_offsets": torch.tensor(
            [
                dy * pw + dx
                for dy in range(-radius, radius + 1)
                for dx in range(-radius, radius + 1)
            ],
            dtype=torch.int64,
        ),
        "near_by_offset": _offset_table(cells + 1, [(0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)], pw),
        "in_view_by_offset": _offset_table(cells + 1, square, pw),
    }


def _instance_fields(
    world: WorldConfig,
    types: tuple[str, ...],
    instances: _Instances,
    grid: _Grid,
    meter_names: tuple[str, ...],
) -> dict[str, Any]:
    """The layout's fields about affordance instances: where, how many at once, how long, what
    they pay (per completion, per tick and on starting) and cost."""
    specs, inst_type = instances.specs, instances.type
    inst_delta = torch.tensor(instances.effects, dtype=torch.float32).reshape(
        len(specs), len(meter_names)
    )
    durations = torch.tensor([max(s.duration, 1) for s in specs], dtype=torch.float32)
    inst_rate = inst_delta / durations.reshape(-1, 1)
    inst_start_delta = torch.zeros_like(inst_delta)
    if "money" in meter_names:
        money = meter_names.index("money")
        costs = torch.tensor([s.cost for s in specs], dtype=torch.float32)
        inst_delta[:, money] -= costs
        inst_start_delta[:, money] -= costs
    return {
        "inst_cell": torch.tensor([grid.cell(xy) for xy in instances.xy], dtype=torch.int64),
        "inst_xy": tuple(instances.xy),
        "inst_type": torch.tensor(inst_type, dtype=torch.int64),
        "inst_capacity": torch.tensor([s.capacity for s in specs], dtype=torch.int64),
        "inst_duration": torch.tensor([max(s.duration, 1) for s in specs], dtype=torch.int64),
        "inst_stock": torch.tensor(
            [UNLIMITED_STOCK if s.stock < 0 else s.stock for s in specs], dtype=torch.int64
        ),
        "inst_interactable": torch.tensor([not s.workplace for s in specs], dtype=torch.bool),
        "inst_idle_code": torch.tensor([terrain_code(t) for t in inst_type], dtype=torch.int64),
        "inst_delta": inst_delta,
        "inst_rate": inst_rate,
        "inst_start_delta": inst_start_delta,
        "effects_per_tick": world.interaction_effects == "per_tick",
        "meal_type": torch.tensor(
            [world.affordances[t].effects.get("satiation", 0.0) > 0 for t in types],
            dtype=torch.bool,
        ),
    }


def _agent_fields(agents: _Agents, clock: tuple, cells: int, tpd: int) -> dict[str, Any]:
    """The layout's fields about agents: where they start, their meters, jobs and shift clock."""
    job_rows = agents.jobs
    phase = clock[0]
    in_progress = (phase == ShiftPhase.ON_TIME_WINDOW) | (phase == ShiftPhase.LATE_WINDOW)
    return {
        "start_cell": torch.tensor(agents.start_cells, dtype=torch.int64),
        "initial_meters": torch.tensor(agents.initial, dtype=torch.float32),
        "has_job": torch.tensor([job.has_job for job in job_rows], dtype=torch.bool),
        "job_cell": torch.tensor([job.cell for job in job_rows], dtype=torch.int64),
        "wage": torch.tensor([job.wage for job in job_rows], dtype=torch.float32),
        "late_penalty": torch.tensor([job.late_penalty for job in job_rows], dtype=torch.float32),
        "absent_penalty": torch.tensor(
            [job.absent_penalty for job in job_rows], dtype=torch.float32
        ),
        "agent_tod_base": torch.arange(len(job_rows), dtype=torch.int64) * tpd,
        "shift_phase": phase,
        "shift_last_tick": clock[1],
        "shift_in_progress": in_progress,
        "shift_active_at": in_progress.view(len(job_rows), tpd).any(0),
        "agent_cell_base": torch.arange(len(job_rows), dtype=torch.int64) * (cells + 1),
        "shift_arrival_kind": torch.where(
            phase == ShiftPhase.ON_TIME_WINDOW,
            int(ShiftEvent.ON_TIME),
            torch.where(phase == ShiftPhase.LATE_WINDOW, int(ShiftEvent.LATE), 0),
        ),
        "clock_features": clock[2],
        "shift_deadline_in": clock[3],
    }


def _offset_table(cells: int, deltas: list[tuple[int, int]], padded_width: int) -> torch.Tensor:
    """(2 * cells + 1,) bool: True at (dy * padded_width + dx) + cells for each (dx, dy)."""
    table = torch.zeros(2 * cells + 1, dtype=torch.bool)
    for dx, dy in deltas:
        table[dy * padded_width + dx + cells] = True
    return table


class JobShift(NamedTuple):
    """One agent's job as the step's tables need it (a jobless agent: has_job False, its cell
    the sink, zeros elsewhere)."""

    has_job: bool
    cell: int
    start: int  # tick of day the shift begins
    end: int  # tick of day after its last tick
    on_time_until: int  # the last tick of day that counts as on time
    wage: float
    late_penalty: float
    absent_penalty: float


def _job_row(world, job_name, inst_names, inst_xy, specs, where, cell, sink) -> JobShift:
    """The agent's job, checked against the catalogue and the scenario's places."""
    if job_name is None:
        return JobShift(False, sink, 0, 0, 0, 0.0, 0.0, 0.0)
    if job_name not in world.jobs:
        known = ", ".join(world.jobs) or "none"
        raise ConfigError(f"{where}.job: unknown job '{job_name}' (jobs: {known})")
    job = world.jobs[job_name]
    jwhere = f"world.jobs.{job_name}"
    if job.location not in inst_names:
        raise ConfigError(
            f"{jwhere}.location: no affordance named '{job.location}' in the scenario ({where})"
        )
    index = inst_names.index(job.location)
    if not specs[index].workplace:
        raise ConfigError(f"{jwhere}.location: '{job.location}' is not a workplace affordance")
    tpd = world.ticks_per_day
    start, end = hour_to_tick(job.shift_start, tpd), hour_to_tick(job.shift_end, tpd)
    if not 0 <= start < end <= tpd or (start == 0 and end == tpd):
        raise ConfigError(
            f"{jwhere}: need 0 <= shift_start < shift_end <= 24 within one day, not all day"
        )
    if job.grace_ticks < 0:
        raise ConfigError(f"{jwhere}.grace_ticks: must be >= 0")
    return JobShift(
        has_job=True,
        cell=cell(inst_xy[index]),
        start=start,
        end=end,
        on_time_until=start + job.grace_ticks,
        wage=job.wage_per_tick,
        late_penalty=job.late_penalty,
        absent_penalty=job.absent_penalty,
    )


def _clock_tables(
    job_rows: list[JobShift], tpd: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per (agent, tick of day): shift phase, last-tick flag, clock features, and the ticks
    left until the shift's last on-time tick (negative once it has passed; tpd without a job).

    Precomputed so the step reads them with one gather instead of a chain of comparisons.
    """
    tod = torch.arange(tpd, dtype=torch.int64)
    angle = 2 * math.pi * tod.double() / tpd
    phases, lasts, clocks, deadlines = [], [], [], []
    for job in job_rows:
        start, end, until = job.start, job.end, job.on_time_until
        if job.has_job:
            phase = torch.full((tpd,), ShiftPhase.AFTER, dtype=torch.int64)
            phase[tod < end] = ShiftPhase.LATE_WINDOW
            phase[tod <= until] = ShiftPhase.ON_TIME_WINDOW
            phase[tod < start] = ShiftPhase.BEFORE
            phase[tod >= end] = ShiftPhase.AFTER
            last = tod == end - 1
            starts_in = ((start - tod) % tpd).double() / tpd
            deadline = torch.where(phase == ShiftPhase.AFTER, (until - tod) % tpd, until - tod)
        else:
            phase = torch.full((tpd,), ShiftPhase.NO_JOB, dtype=torch.int64)
            last = torch.zeros(tpd, dtype=torch.bool)
            starts_in = torch.zeros(tpd, dtype=torch.float64)
            deadline = torch.full((tpd,), tpd, dtype=torch.int64)
        deadlines.append(deadline)
        phases.append(phase)
        lasts.append(last)
        clocks.append(torch.stack((angle.sin(), angle.cos(), starts_in), dim=-1))
    return (
        torch.cat(phases),
        torch.cat(lasts),
        torch.cat(clocks).float(),
        torch.cat(deadlines).float(),
    )


def _bed_cell(agent, inst_names, inst_xy, inst_type, types, cell, places, start) -> int | None:
    """The agent's own bed (its `bed` key) or the Bed nearest its start; None if no bed."""
    if agent.bed is not None:
        if agent.bed not in inst_names:
            raise ConfigError(f"agent '{agent.id}'.bed: no affordance named '{agent.bed}'")
        index = inst_names.index(agent.bed)
        if types[inst_type[index]] != "Bed":
            raise ConfigError(f"agent '{agent.id}'.bed: '{agent.bed}' is not a Bed")
        return cell(inst_xy[index])
    beds = [cell(xy) for xy, k in zip(inst_xy, inst_type, strict=True) if types[k] == "Bed"]
    if not beds:
        return None
    return min(beds, key=lambda b: float(places.toward(b)[start, 2]))


class PlaceFinder:
    """Where places are from every cell, walking around walls: offsets and path distances.

    Agents see only a window of the map; these give each one a compass to its own workplace
    and bed and to the nearest affordance of each kind (the town before commit 537cce9,
    2026-11-30, hid both the job and the way through the wall from an agent at home)."""

    def __init__(self, scenario: ScenarioConfig, walls: set, cell, cells: int) -> None:
        self._floor = [
            (x, y)
            for y in range(scenario.height)
            for x in range(scenario.width)
            if (x, y) not in walls
        ]
        self._cell, self._cells = cell, cells
        self._xy_of_cell = {cell(xy): xy for xy in self._floor}
        self._scale = (max(scenario.width - 1, 1), max(scenario.height - 1, 1))
        self._longest = float(max(scenario.width + scenario.height - 2, 1))
        self._fields: dict[int, dict[tuple[int, int], int]] = {}

    @property
    def longest(self) -> float:
        """The path length distances are divided by (the grid's width + height - 2)."""
        return self._longest

    @staticmethod
    def names(prefix: str) -> tuple[str, str, str]:
        return (f"{prefix}_dx", f"{prefix}_dy", f"{prefix}_distance")

    def _field(self, target: int) -> dict[tuple[int, int], int]:
        if target not in self._fields:
            start = self._xy_of_cell[target]
            floor, field, frontier = set(self._floor), {start: 0}, deque([start])
            while frontier:
                x, y = frontier.popleft()
                for nxt in ((x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)):
                    if nxt in floor and nxt not in field:
                        field[nxt] = field[(x, y)] + 1
                        frontier.append(nxt)
            self._fields[target] = field
        return self._fields[target]

    def toward(self, target: int | None) -> torch.Tensor:
        """(cells + 1, 3): dx, dy (scaled by the grid) and path distance (scaled by the
        longest wall-free path) from each cell to `target`; distance 1 where unreachable."""
        out = torch.zeros(self._cells + 1, 3)
        out[:, 2] = 1.0
        if target is None or target not in self._xy_of_cell:
            return out
        tx, ty = self._xy_of_cell[target]
        field = self._field(target)
        for xy in self._floor:
            c = self._cell(xy)
            out[c, 0] = (tx - xy[0]) / self._scale[0]
            out[c, 1] = (ty - xy[1]) / self._scale[1]
            if xy in field:
                out[c, 2] = min(field[xy] / self._longest, 1.0)
        return out

    def nearest(self, targets: list[int]) -> torch.Tensor:
        """(cells + 1, 2): dx, dy to the nearest target by path distance (zeros if none)."""
        if not targets:
            return torch.zeros(self._cells + 1, 2)
        each = torch.stack([self.toward(t) for t in targets])  # (T, cells + 1, 3)
        best = each[:, :, 2].argmin(0)
        return each.gather(0, best.view(1, -1, 1).expand(1, -1, 3))[0, :, :2]


def _commute_window(job: JobShift, lead: int, tpd: int) -> torch.Tensor:
    """(tpd,) bool: from `lead` ticks before the shift until its end (wrapping midnight)."""
    tod = torch.arange(tpd)
    if not job.has_job:
        return torch.zeros(tpd, dtype=torch.bool)
    return ((tod - (job.start - lead)) % tpd) < (job.end - job.start + lead)


def _shift_charges(job_rows: list[JobShift], tpd: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per (agent, tick of day): the late penalty due at the grace deadline, and the absence
    penalty per tick of the late window (so a missed shift costs late + absent in total)."""
    late, absence = torch.zeros(len(job_rows), tpd), torch.zeros(len(job_rows), tpd)
    for i, job in enumerate(job_rows):
        end, until = job.end, job.on_time_until
        if not job.has_job or until + 1 >= end:
            continue
        late[i, until + 1] = job.late_penalty
        absence[i, until + 1 : end] = job.absent_penalty / (end - until - 1)
    return late.reshape(-1), absence.reshape(-1)

"""Draw an episode's frames from its recording and its own names (never from a World).

The static layer — background, grid, walls, labelled affordances, panel titles — is drawn once;
each step copies it and draws what moves: agents (a colour each, with a fading trail and their
last action), affordance state (busy / queued outlines), meters per agent with their names,
action probabilities or Q-values with the chosen action marked, episode info, time of day and
interaction progress; and, where the recording has them, chats (a line between the two agents:
green success, red failure), late help and takeovers (a ring), closed affordances during a
utility outage, rivals above the avoid threshold (a dashed orange line), each agent's shift
state and queue place, and the latest events in words. Under the panel a chart draws one agent's
meters and the episode's cumulative reward over the whole episode, the current step marked and
events ticked along its foot. What a recording lacks (a version-1 file's clock, progress) is left
out, not drawn as zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from townlet.recording.events import closed_types, episode_events, has_events, outages_by_step
from townlet.recording.format import Episode
from townlet.recording.palette import agent_rgb
from townlet.recording.situations import (
    agent_sources,
    queue_positions,
    relations,
    shift_states,
)
from townlet.recording.wording import COLOUR_ROLES, WEEKDAY_TITLES, event_text

PRESETS = {"1080p": (1920, 1080), "1440p": (2560, 1440)}
TRAIL = 8
CHAT_OK, CHAT_BAD, HELP, CLOSED = (95, 211, 154), (255, 93, 108), (122, 184, 255), (138, 47, 58)
RIVAL = (255, 159, 67)
METER_COLOURS = [(120, 200, 160), (122, 184, 255), (233, 196, 106), (199, 146, 234), (244, 162, 97)]
ROLE_COLOURS = {  # recording.wording's colour roles in this renderer's palette
    "help": HELP,
    "warning": (233, 196, 106),
    "critical": (230, 57, 70),
}
MARKER_KINDS = {  # event -> colour of its tick under the chart (as the page's scrubber)
    kind: ROLE_COLOURS[role] for kind, role in COLOUR_ROLES.items() if role in ROLE_COLOURS
}
RECENT_STEPS = 6  # the events panel lists what happened over the last few steps


@dataclass(frozen=True)
class Style:
    background: tuple[int, int, int]
    panel: tuple[int, int, int]
    floor: tuple[int, int, int]
    wall: tuple[int, int, int]
    grid_line: tuple[int, int, int]
    text: tuple[int, int, int]
    muted: tuple[int, int, int]
    affordance: tuple[int, int, int]
    busy: tuple[int, int, int]
    queued: tuple[int, int, int]
    bar: tuple[int, int, int]


STYLES = {
    "dark": Style(
        (18, 20, 26),
        (30, 33, 42),
        (44, 48, 60),
        (10, 11, 14),
        (58, 62, 76),
        (235, 235, 240),
        (150, 154, 168),
        (80, 86, 110),
        (233, 196, 106),
        (231, 111, 81),
        (120, 200, 160),
    ),
    "light": Style(
        (245, 245, 240),
        (255, 255, 255),
        (226, 228, 220),
        (70, 72, 80),
        (200, 202, 195),
        (25, 25, 30),
        (110, 112, 120),
        (176, 190, 214),
        (214, 160, 40),
        (214, 84, 56),
        (46, 150, 110),
    ),
}


def frame_size(preset: str | None = "1080p", dpi: int | None = None) -> tuple[int, int]:
    """(width, height): a preset, or 16*dpi x 9*dpi as the seed's --dpi did (even sizes)."""
    if dpi is not None:
        return (16 * dpi) // 2 * 2, (9 * dpi) // 2 * 2
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r} (presets: {', '.join(PRESETS)})")
    return PRESETS[preset]


class FrameRenderer:
    def __init__(
        self,
        episode: Episode,
        size: tuple[int, int],
        style: str = "dark",
        reason: str = "",
        focus: str | None = None,
    ) -> None:
        if style not in STYLES:
            raise ValueError(f"unknown style {style!r} (styles: {', '.join(STYLES)})")
        self.episode, self.style = episode, STYLES[style]
        self.width, self.height = size
        header = episode.header
        grid = header["grid"]
        self.cols, self.rows = int(grid["width"]), int(grid["height"])
        self.unit = self.height / 1080
        margin = int(40 * self.unit)
        side = min(self.height - 2 * margin, int(self.width * 0.58) - 2 * margin)
        self.cell = side // max(self.cols, self.rows)
        self.origin = (margin, (self.height - self.cell * self.rows) // 2)
        self.panel_x = margin * 2 + self.cell * self.cols
        self.font = ImageFont.load_default(size=max(10, int(22 * self.unit)))
        self.small = ImageFont.load_default(size=max(8, int(16 * self.unit)))
        self.title = ImageFont.load_default(size=max(12, int(30 * self.unit)))
        cols = episode.columns
        self.agents = list(header["agent_ids"])
        self.meter_names = list(header["meter_names"])
        self.action_names = list(header["action_names"])
        self.positions = cols["positions"].astype(
            np.int64
        )  # stored as uint8: widen for pixel maths
        self.rewards = cols["rewards"].astype(np.float64).mean(axis=1)
        self.cumulative = np.cumsum(self.rewards)
        self.policy_column = (
            "action_probs" if "action_probs" in cols else "q_values" if "q_values" in cols else None
        )
        self.reason = reason or ", ".join(episode.metadata.get("recording_reasons") or [])
        self.instances = {i: a for i, a in enumerate(header["affordances"])}
        self.events = episode_events(episode) if has_events(episode) else None
        self.outages = outages_by_step(episode)
        self.focus = self.agents.index(focus) if focus in self.agents else 0
        self.shifts, self.queues = shift_states(episode), queue_positions(episode)
        self.sources = agent_sources(episode)
        self.relations = relations(episode)
        rivalry = (header.get("world_config") or {}).get("rivalry")
        avoid = rivalry.get("avoid_threshold") if isinstance(rivalry, dict) else None
        self.avoid = (
            avoid if isinstance(avoid, (int, float)) and not isinstance(avoid, bool) else None
        )
        self.static = self._draw_static()

    # ------------------------------------------------------------------ geometry
    def cell_box(self, x: int, y: int) -> tuple[int, int, int, int]:
        x, y = int(x), int(y)
        left, top = self.origin[0] + x * self.cell, self.origin[1] + y * self.cell
        return left, top, left + self.cell - 1, top + self.cell - 1

    def cell_center(self, x: int, y: int) -> tuple[int, int]:
        left, top, right, bottom = self.cell_box(x, y)
        return (left + right) // 2, (top + bottom) // 2

    def agent_colour(self, index: int) -> tuple[int, int, int]:
        return agent_rgb(index)

    # ------------------------------------------------------------------ static layer
    def _draw_static(self) -> Image.Image:
        s = self.style
        image = Image.new("RGB", (self.width, self.height), s.background)
        draw = ImageDraw.Draw(image)
        walls = {tuple(w) for w in self.episode.header["grid"].get("walls", [])}
        for y in range(self.rows):
            for x in range(self.cols):
                draw.rectangle(
                    self.cell_box(x, y),
                    fill=s.wall if (x, y) in walls else s.floor,
                    outline=s.grid_line,
                )
        for affordance in self.instances.values():
            box = self.cell_box(affordance["x"], affordance["y"])
            inset = max(2, self.cell // 10)
            draw.rounded_rectangle(
                (box[0] + inset, box[1] + inset, box[2] - inset, box[3] - inset),
                radius=inset,
                fill=s.affordance,
            )
            draw.text(  # the instance's name, as the page shows it, cut to the tile
                (box[0] + inset + 2, box[1] + inset),
                _fit(draw, affordance["name"], self.cell - 2 * inset - 4, self.small),
                fill=s.text,
                font=self.small,
            )
        draw.rectangle((self.panel_x - 10, 0, self.width, self.height), fill=s.panel)
        self._legend(draw)
        return image

    def _legend(self, draw: ImageDraw.ImageDraw) -> None:
        """What the outlines, lines and rings mean, under the grid (drawn once)."""
        s, size = self.style, max(8, int(14 * self.unit))
        x = self.origin[0]
        y = min(
            self.height - size - 4, self.origin[1] + self.rows * self.cell + int(12 * self.unit)
        )
        policy = {"action_probs": "bars: action probabilities", "q_values": "bars: Q-values"}
        items = [
            ("box", s.busy, "in use"),
            ("box", s.queued, "queue / episode ended"),
            ("fill", CLOSED, "closed (outage)"),
            ("line", CHAT_OK, "chat"),
            ("line", CHAT_BAD, "failed chat"),
            ("ring", HELP, "help / takeover"),
        ]
        if self.relations is not None and self.avoid is not None:
            items.append(("line", RIVAL, "rivals (avoid)"))
        for kind, colour, text in items:
            if kind == "box":
                draw.rectangle((x, y, x + size, y + size), outline=colour, width=2)
            elif kind == "fill":
                draw.rectangle((x, y, x + size, y + size), fill=colour)
            elif kind == "line":
                draw.line((x, y + size // 2, x + size, y + size // 2), fill=colour, width=3)
            else:
                draw.ellipse((x, y, x + size, y + size), outline=colour, width=2)
            draw.text((x + size + 4, y - 1), text, fill=s.muted, font=self.small)
            x += size + 12 + int(draw.textlength(text, font=self.small))
        if self.policy_column in policy:
            draw.text((x, y - 1), policy[self.policy_column], fill=s.muted, font=self.small)

    # ------------------------------------------------------------------ one step
    def render(self, step: int) -> np.ndarray:
        """(height, width, 3) uint8 frame of `step`."""
        s, cols, meta = self.style, self.episode.columns, self.episode.metadata
        image = self.static.copy()
        draw = ImageDraw.Draw(image)
        self._affordance_state(draw, step)
        self._closed(draw, step)
        positions = self.positions
        self._rivals(draw, step)
        for agent in range(len(self.agents)):
            colour = self.agent_colour(agent)
            trail = [
                self.cell_center(*positions[t, agent])
                for t in range(max(0, step - TRAIL), step + 1)
            ]
            if len(trail) > 1:
                draw.line(trail, fill=tuple(c // 2 for c in colour), width=max(2, self.cell // 12))
            cx, cy = self.cell_center(*positions[step, agent])
            radius = max(4, int(self.cell * 0.3))
            done = bool(cols["dones"][step, agent]) if "dones" in cols else False
            draw.ellipse(
                (cx - radius, cy - radius, cx + radius, cy + radius),
                fill=colour,
                outline=s.text if not done else s.queued,
                width=max(1, radius // 6),
            )
        self._social(draw, step)
        x, y = self.panel_x, int(30 * self.unit)
        line = int(30 * self.unit)
        steps = self.episode.steps
        draw.text(
            (x, y),
            f"Episode {meta.get('episode_id')}   stage {meta.get('curriculum_stage')}",
            fill=s.text,
            font=self.title,
        )
        y += int(44 * self.unit)
        draw.text(
            (x, y),
            f"step {step + 1} / {steps}   reward {self.rewards[step]:+.3f}   "
            f"cumulative {self.cumulative[step]:+.3f}",
            fill=s.text,
            font=self.font,
        )
        y += line
        draw.text((x, y), f"reason: {self.reason}"[:70], fill=s.muted, font=self.small)
        y += line
        y = self._time_bar(draw, x, y, step)
        y = self._event_lines(draw, x, y, step)
        chart_top = self.height - int(170 * self.unit)
        for agent, agent_id in enumerate(self.agents):
            y = self._agent_panel(draw, x, y, step, agent, agent_id)
            if y > chart_top - 170 * self.unit:
                break
        self._chart(draw, x, chart_top, step)
        return np.asarray(image)

    def _chart(self, draw: ImageDraw.ImageDraw, x: int, top: int, step: int) -> None:
        """The focused agent's meters (thin, 0-1) and the episode's cumulative reward (mean
        over agents, thick, its own scale) over the whole episode, with the current step marked
        and events ticked along the foot, as the page's timeline shows them."""
        s = self.style
        width, height = int(self.width - x - 40 * self.unit), int(120 * self.unit)
        last = max(1, self.episode.steps - 1)
        label_x = x
        agent_id = self.agents[self.focus]
        labels = [(f"{agent_id}:", s.muted)]
        labels += [
            (m, METER_COLOURS[i % len(METER_COLOURS)]) for i, m in enumerate(self.meter_names)
        ]
        for text, colour in [*labels, ("cumulative reward", s.text)]:
            draw.text((label_x, top - int(22 * self.unit)), text, fill=colour, font=self.small)
            label_x += int(draw.textlength(text, font=self.small)) + int(10 * self.unit)
        draw.rectangle((x, top, x + width, top + height), outline=s.grid_line)

        def polyline(values: np.ndarray, lo: float, hi: float, colour, thickness: int) -> None:
            span = (hi - lo) or 1.0
            points = [
                (x + int(width * t / last), top + height - int(height * (float(v) - lo) / span))
                for t, v in enumerate(values)
            ]
            if len(points) > 1:
                draw.line(points, fill=colour, width=thickness)

        meters = self.episode.columns["meters"][:, self.focus]
        for i in range(meters.shape[-1]):
            polyline(meters[:, i], 0.0, 1.0, METER_COLOURS[i % len(METER_COLOURS)], 1)
        values = self.cumulative
        polyline(values, float(min(0.0, values.min())), float(max(0.0, values.max())), s.text, 2)
        cursor = x + int(width * step / last)
        draw.line((cursor, top, cursor, top + height), fill=s.busy, width=2)
        for t, events in enumerate(self.events or []):
            for event in events:
                kind = event["kind"]
                colour = (
                    (CHAT_OK if event.get("success") else CHAT_BAD)
                    if kind == "chat"
                    else MARKER_KINDS.get(kind)
                )
                if colour is not None:
                    tick = x + int(width * t / last)
                    draw.line((tick, top + height - 8, tick, top + height), fill=colour, width=2)

    def _rivals(self, draw: ImageDraw.ImageDraw, step: int) -> None:
        """A dashed line between agents whose rivalry is at or above the avoid threshold."""
        if self.relations is None or self.avoid is None:
            return
        where = {agent_id: a for a, agent_id in enumerate(self.agents)}
        for agent_id, ties in self.relations[step].items():
            for other, _, rivalry in ties:
                if rivalry < self.avoid or other not in where or agent_id > other:
                    continue
                a, b = (
                    self.cell_center(*self.positions[step, where[agent_id]]),
                    self.cell_center(*self.positions[step, where[other]]),
                )
                dashes = max(2, int(np.hypot(b[0] - a[0], b[1] - a[1]) // max(4, self.cell // 6)))
                for k in range(0, dashes, 2):
                    f0, f1 = k / dashes, (k + 1) / dashes
                    draw.line(
                        (
                            a[0] + (b[0] - a[0]) * f0,
                            a[1] + (b[1] - a[1]) * f0,
                            a[0] + (b[0] - a[0]) * f1,
                            a[1] + (b[1] - a[1]) * f1,
                        ),
                        fill=RIVAL,
                        width=max(2, self.cell // 14),
                    )

    def _affordance_state(self, draw: ImageDraw.ImageDraw, step: int) -> None:
        cols, s = self.episode.columns, self.style
        for name, colour in (("using", s.busy), ("queued", s.queued)):
            if name not in cols:
                continue
            for instance in set(int(i) for i in cols[name][step] if i >= 0):
                affordance = self.instances.get(instance)
                if affordance is not None:
                    draw.rectangle(
                        self.cell_box(affordance["x"], affordance["y"]),
                        outline=colour,
                        width=max(2, self.cell // 14),
                    )

    def _closed(self, draw: ImageDraw.ImageDraw, step: int) -> None:
        closed = closed_types(self.episode, self.outages[step])
        inset = max(2, self.cell // 10)
        for affordance in self.instances.values():
            if affordance["type"] in closed:
                box = self.cell_box(affordance["x"], affordance["y"])
                draw.rectangle(
                    (
                        box[0] + inset,
                        box[1] + 2 * inset + int(16 * self.unit),
                        box[2] - inset,
                        box[3] - inset,
                    ),
                    fill=CLOSED,
                )

    def _social(self, draw: ImageDraw.ImageDraw, step: int) -> None:
        if self.events is None:
            return
        where = {agent_id: a for a, agent_id in enumerate(self.agents)}
        for event in self.events[step]:
            a = where.get(event["agent"])
            if a is None:
                continue
            centre = self.cell_center(*self.positions[step, a])
            if event["kind"] == "chat" and event.get("with") in where:
                other = self.cell_center(*self.positions[step, where[event["with"]]])
                colour = CHAT_OK if event["success"] else CHAT_BAD
                draw.line([centre, other], fill=colour, width=max(3, self.cell // 8))
            elif event["kind"] in ("late_help", "takeover"):
                r = int(self.cell * 0.42)
                draw.ellipse(
                    (centre[0] - r, centre[1] - r, centre[0] + r, centre[1] + r),
                    outline=HELP,
                    width=max(2, self.cell // 12),
                )

    def _event_lines(self, draw: ImageDraw.ImageDraw, x: int, y: int, step: int) -> int:
        s, line = self.style, int(24 * self.unit)
        if self.outages[step]:
            draw.text(
                (x, y), f"outage: {', '.join(self.outages[step])}", fill=CHAT_BAD, font=self.small
            )
            y += line
        if self.events is None:
            return y
        recent = [
            (t, e)
            for t in range(max(0, step - RECENT_STEPS + 1), step + 1)
            for e in self.events[t]
            if e["kind"] != "completed"
        ][-2:]
        for t, event in recent:
            draw.text(
                (x, y), f"{t + 1}: {describe_event(event)}"[:80], fill=s.muted, font=self.small
            )
            y += line
        return y

    def _time_bar(self, draw: ImageDraw.ImageDraw, x: int, y: int, step: int) -> int:
        s, cols = self.style, self.episode.columns
        if "time_of_day" not in cols:  # no clock recorded: no bar, rather than a made-up 00:00
            return y
        width, height = int(self.width - x - 40 * self.unit), int(12 * self.unit)
        tpd = int(self.episode.header.get("ticks_per_day") or 240)
        tod = int(cols["time_of_day"][step]) % tpd
        minutes = tod * 24 * 60 // tpd
        day = (  # a multi-day recording names the day
            f"{WEEKDAY_TITLES[int(cols['weekday'][step]) % 7]} " if "weekday" in cols else ""
        )
        label = f"time of day {day}{minutes // 60:02d}:{minutes % 60:02d}"
        draw.text((x, y), label, fill=s.muted, font=self.small)
        y += int(22 * self.unit)
        draw.rectangle((x, y, x + width, y + height), fill=s.floor)
        draw.rectangle((x, y, x + int(width * tod / tpd), y + height), fill=s.bar)
        return y + int(28 * self.unit)

    def _agent_panel(
        self, draw: ImageDraw.ImageDraw, x: int, y: int, step: int, agent: int, agent_id: str
    ) -> int:
        s, cols = self.style, self.episode.columns
        action = int(cols["actions"][step, agent])
        name = self.action_names[action] if action < len(self.action_names) else str(action)
        progress = (
            f"   progress {float(cols['interaction_progress'][step, agent]):.0%}"
            if "interaction_progress" in cols
            else ""
        )
        draw.ellipse(
            (x, y + 4, x + int(16 * self.unit), y + 4 + int(16 * self.unit)),
            fill=self.agent_colour(agent),
        )
        draw.text(
            (x + int(24 * self.unit), y),
            f"{agent_id}: {name}{progress}",
            fill=s.text,
            font=self.font,
        )
        y += int(32 * self.unit)
        situation = self._situation(step, agent)
        if situation:
            draw.text((x, y - int(4 * self.unit)), situation, fill=s.muted, font=self.small)
            y += int(24 * self.unit)
        half = int((self.width - x - 60 * self.unit) / 2)
        bar_h, gap = int(14 * self.unit), int(20 * self.unit)
        meters = cols["meters"][step, agent]
        for i, meter in enumerate(self.meter_names):
            top = y + i * gap
            draw.text((x, top - 2), meter[:10], fill=s.muted, font=self.small)
            left = x + int(100 * self.unit)
            draw.rectangle(
                (left, top, left + half - int(110 * self.unit), top + bar_h), fill=s.floor
            )
            value = float(np.clip(meters[i], 0, 1))
            draw.rectangle(
                (left, top, left + int((half - 110 * self.unit) * value), top + bar_h), fill=s.bar
            )
        if self.policy_column is not None:
            values = cols[self.policy_column][step, agent].astype(np.float64)
            if self.policy_column == "q_values":
                span = values.max() - values.min()
                values = (values - values.min()) / span if span > 0 else np.zeros_like(values)
            px = x + half
            for i, action_name in enumerate(self.action_names[: len(values)]):
                top = y + i * gap
                chosen = i == action
                draw.text(
                    (px, top - 2),
                    ("> " if chosen else "  ") + action_name[:9],
                    fill=s.text if chosen else s.muted,
                    font=self.small,
                )
                left = px + int(120 * self.unit)
                right = left + int((half - 140 * self.unit) * float(np.clip(values[i], 0, 1)))
                draw.rectangle((left, top, right, top + bar_h), fill=s.busy if chosen else s.bar)
        rows = max(len(self.meter_names), len(self.action_names) if self.policy_column else 0)
        return y + rows * gap + int(16 * self.unit)

    def _situation(self, step: int, agent: int) -> str:
        """Shift state and queue place in words, as the page's agent focus says them."""
        parts = []
        if self.sources is not None:
            source = self.sources[agent]
            parts.append("focal" if source == "focal" else f"background: {source}")
        if self.shifts is not None:
            parts.append(f"shift: {self.shifts[step][agent]}")
        place = self.queues[step][agent] if self.queues is not None else None
        if place:
            name = self.instances.get(place[0], {}).get("name", str(place[0]))
            parts.append(f"queue: {place[1]} of {place[2]} at {name}")
        return "   ".join(parts)


def describe_event(event: dict) -> str:
    """An event in words, as the viewer's event list says it (one wording: recording.wording)."""
    return event.get("text") or event_text(event)


def _fit(draw: ImageDraw.ImageDraw, text: str, width: int, font) -> str:
    """`text` cut (with an ellipsis) to fit `width` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while len(text) > 1 and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"

"""The agents' colours, one palette for the viewer (sent in every state update) and the video
renderer, so an agent looks the same on the page and in an exported MP4."""

from __future__ import annotations

AGENT_COLOURS = (
    "#e63946",
    "#457b9d",
    "#2a9d8f",
    "#f4a261",
    "#8338ec",
    "#ffbe0b",
    "#3a86ff",
    "#fb5607",
)


def agent_colour(index: int) -> str:
    """`#rrggbb` of the agent at `index` (the palette repeats past eight agents)."""
    return AGENT_COLOURS[index % len(AGENT_COLOURS)]


def agent_rgb(index: int) -> tuple[int, int, int]:
    colour = agent_colour(index)
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)

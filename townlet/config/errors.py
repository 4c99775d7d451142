"""The one error type for a configuration that composes but must not run."""

from __future__ import annotations


class ConfigError(ValueError):
    """A config value that is out of range, unknown or inconsistent; the message names the key."""


def one_line(error: BaseException) -> str:
    """A composition error as one line. Hydra and OmegaConf spread theirs over several lines and
    a chain of causes (hints, search paths, object types); keep the line that names the key, and
    the options when an option is missing."""
    chain = []
    seen: BaseException | None = error
    while seen is not None and len(chain) < 8:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    for link in chain:  # OmegaConf's errors carry the full key
        key = getattr(link, "full_key", None)
        if key:
            return f"{key}: {_lines(link)[0]}"
    lines = _lines(error)
    if not lines:
        return type(error).__name__
    options = [line for line in lines[1:] if not line.endswith(":")]
    if any(line.startswith("Available options") for line in lines):
        return f"{lines[0]} (options: {', '.join(options)})"
    return lines[0]


def _lines(error: BaseException) -> list[str]:
    noise = ("Config search path", "provider=", "full_key:", "object_type=", "reference_type=")
    return [
        line.strip()
        for line in str(error).splitlines()
        if line.strip() and not line.strip().startswith(noise)
    ]

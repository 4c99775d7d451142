"""Golden metrics: guard scenario behaviour against drift; refresh from a capture suite."""

from townlet.golden.compare import compare_runs
from townlet.golden.merge import merge_captures
from townlet.golden.store import DEFAULT_GOLDEN, load_golden

__all__ = ["DEFAULT_GOLDEN", "compare_runs", "load_golden", "merge_captures"]

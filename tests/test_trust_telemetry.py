"""The telemetry tools under hostile logs (issue 27, the Hypothesis floor): whatever a log holds
(records with any value under any key, broken lines, raw bytes), `validate` and `summary` give
records or one TelemetryError naming the file and line, one line long, never another
exception."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from conftest import sample
from hypothesis import given
from hypothesis import strategies as st

from townlet.telemetry.reader import TelemetryError
from townlet.telemetry.summary import KEY_METRICS, summarise
from townlet.telemetry.validate import validate_log

values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=10,
)
keys = st.sampled_from(sorted({*KEY_METRICS, "epoch", "telemetry_version", "data_mode", "x\ny"}))
edited = st.dictionaries(keys, values, max_size=4).map(lambda changes: sample(**changes))
line = (
    edited.map(lambda record: json.dumps(record).encode() + b"\n")
    | st.binary(max_size=80)
    | st.just(b"\n")
)


def outcomes(raw: bytes) -> list[str]:
    """What each tool did with the log: 'ok' or the error's text; anything else raises."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "epochs.jsonl"
        path.write_bytes(raw)
        results = []
        for tool in (lambda: list(validate_log(path)), lambda: summarise(path)):
            try:
                tool()
                results.append("ok")
            except TelemetryError as error:
                results.append(str(error))
        return results


@given(st.lists(line, min_size=0, max_size=5))
def test_any_log_is_read_or_refused_in_one_line(lines):
    for text in outcomes(b"".join(lines)):
        assert text == "ok" or (text and "\n" not in text and len(text) < 1000), text


def test_a_valid_log_is_accepted_by_both_tools():
    """The property above could pass by refusing everything: a real record passes both."""
    assert outcomes(json.dumps(sample()).encode() + b"\n") == ["ok", "ok"]

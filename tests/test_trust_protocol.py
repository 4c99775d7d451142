"""The viewer protocol's parser under hostile input (issue 27 items 5 and the Hypothesis floor):
any text frame is a command and message or one ProtocolError, and list filters of any shape are
checked filters or one ProtocolError, never another exception."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from townlet.serve.protocol import ProtocolError, list_filters, parse

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
filter_keys = st.sampled_from(
    ["stage", "limit", "min_reward", "max_reward", "reason", "run", "order", "other"]
)


@pytest.mark.parametrize("order", [{}, [], ["reward"], {"a": 1}, 3, True])
def test_an_order_of_the_wrong_type_is_a_protocol_error(order):
    """`filters.order` given as {} or [] closed the connection with 1011 (unhashable)."""
    with pytest.raises(ProtocolError, match="Invalid order"):
        list_filters({"order": order})


@given(st.binary(max_size=256) | st.text(max_size=256))
def test_any_frame_is_a_command_or_a_protocol_error(raw):
    try:
        command, message = parse(raw)
    except ProtocolError as error:
        assert str(error) and "\n" not in str(error)
    else:
        assert isinstance(command, str) and isinstance(message, dict)


@given(st.dictionaries(filter_keys, json_values, max_size=6) | json_values)
@example({"\n": False})  # echoed the key raw: an error reply of two lines
def test_any_filters_are_checked_filters_or_a_protocol_error(filters):
    try:
        clean = list_filters(orjson.loads(orjson.dumps(filters)))
    except ProtocolError as error:
        assert str(error) and "\n" not in str(error)
    else:
        assert 1 <= clean["limit"] <= 10_000


@pytest.mark.parametrize("text", ["a\nb", "\r\x00\x1b[2J", "x" * 5000])
def test_an_error_reply_is_one_printable_line(text):
    """A hostile key or command name echoed into a reply cannot add lines or control codes."""
    shown = str(ProtocolError(f"Unknown filter: {text}"))
    assert shown.isprintable() and len(shown) <= 500

"""What the model makes is bounded before the inference server builds its event, so an answer
it returns can always be captured, whatever the model produced."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schemas.events import MAX_TEXT_CHARS, InferenceEvent
from services.inference_server.app import capturable_logprob, capturable_output


@pytest.mark.parametrize(
    ("output", "logprob"),
    [
        ("yes\x00" * 20_000, float("nan")),  # NUL bytes, 80,000 characters, a broken model
        ("no", float("-inf")),
        ("", -250.0),
        ("x" * MAX_TEXT_CHARS, 0.0),
    ],
)
def test_any_model_output_makes_a_valid_inference_event(output: str, logprob: float):
    event = InferenceEvent(
        event_id="e1",
        occurred_at=datetime.now(UTC),
        task="spam",
        input="mail",
        output=capturable_output(output),
        base_model="tiny-llama",
        mean_logprob=capturable_logprob(logprob),
    )
    assert "\x00" not in event.output and len(event.output) <= MAX_TEXT_CHARS
    assert event.output == output.replace("\x00", "")[:MAX_TEXT_CHARS]
    assert -100 <= event.mean_logprob <= 0

"""The inference server against a real control plane, broker and (tiny) model: answers are
captured, feedback attaches, the OpenAI SDK works unchanged, and champions swap in place
under load with no failed request, rollback included."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest

from schemas.events import MAX_TEXT_CHARS
from tests.integration.conftest import (
    ControlPlaneProcess,
    InferenceServerProcess,
    create_token,
    stored,
)
from tests.integration.in_process_server import served_in_process
from tests.integration.learning_helpers import define_task, import_examples

pytestmark = pytest.mark.integration


@pytest.fixture
def plane(model_plane):
    return model_plane


@pytest.fixture
def server(plane):
    server = InferenceServerProcess(plane)
    yield server
    server.stop()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_answers_are_captured_feedback_attaches_and_openai_sdk_works(plane, server, tmp_path):
    define_task(plane, tmp_path, "money")
    server.start()
    app = create_token(plane, "app")
    question = {"task": "money", "input": "wire 500 dollars to this account"}
    answer = httpx.post(f"{server.url}/v1/generate", headers=bearer(app), json=question, timeout=30)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["output"] in ("yes", "no") and body["adapter_id"] is None
    assert body["mean_logprob"] < 0 and body["inference_id"]
    feedback = httpx.post(
        f"{server.url}/v1/feedback",
        headers=bearer(app),
        timeout=30,
        json={
            "task": "money",
            "inference_id": body["inference_id"],
            "signal": "thumbs_down",
        },
    )
    assert feedback.status_code == 202, feedback.text

    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=app)
    completion = client.chat.completions.create(
        model="money",
        messages=[
            {"role": "system", "content": "ignored: the task decides"},
            {"role": "user", "content": "lunch at noon?"},
        ],
    )
    assert completion.choices[0].message.content in ("yes", "no")
    assert completion.usage.prompt_tokens > 5 and completion.usage.completion_tokens == 1
    assert completion.id and completion.id != body["inference_id"]
    with pytest.raises(openai.NotFoundError, match="no task named nope"):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])

    def captured(s: dict) -> bool:
        events = s["tasks"].get("money", {}).get("events", {})
        return events.get("feedback", {}).get("stored") == 1 and (
            events.get("inference", {}).get("stored") == 2
        )

    status = plane.wait_for(captured)
    assert status["events"]["inference"]["rejected"] == 0
    reviewer = create_token(plane, "reviewer")
    seen = httpx.get(
        f"{plane.url}/v1/review/items/{body['inference_id']}", headers=bearer(reviewer)
    ).json()
    assert seen["input"] == "wire 500 dollars to this account"
    assert seen["output"] == body["output"] and seen["feedback"][0]["signal"] == "thumbs_down"
    assert seen["reason"] == "negative feedback"

    assert (
        httpx.post(f"{server.url}/v1/generate", json={"task": "money", "input": "x"}).status_code
        == 401
    )
    assert (
        httpx.post(
            f"{server.url}/v1/generate",
            headers=bearer(reviewer),
            timeout=30,
            json={"task": "money", "input": "x"},
        ).status_code
        == 403
    )


def test_a_request_the_contract_refuses_gets_a_clear_4xx_before_the_model_runs(
    plane, tiny_model_dir, tmp_path
):
    define_task(plane, tmp_path, "money")
    spool = tmp_path / "spool"
    with served_in_process(plane, tiny_model_dir, bootstrap=plane.bootstrap, spool_dir=spool) as s:
        too_long = "pay the invoice " * 2_500  # 40,000 characters
        refused = {
            "chat, too long": s.http.post(
                "/v1/chat/completions",
                json={"model": "money", "messages": [{"role": "user", "content": too_long}]},
            ),
            "chat, NUL": s.http.post(
                "/v1/chat/completions",
                json={"model": "money", "messages": [{"role": "user", "content": "pay\x00now"}]},
            ),
            "chat, NUL in user": s.http.post(
                "/v1/chat/completions",
                json={
                    "model": "money",
                    "messages": [{"role": "user", "content": "pay now"}],
                    "user": "ana\x00",
                },
            ),
            "generate, too long": s.http.post(
                "/v1/generate", json={"task": "money", "input": too_long}
            ),
            "generate, NUL": s.http.post(
                "/v1/generate", json={"task": "money", "input": "pay\x00now"}
            ),
            "feedback, NUL": s.http.post(
                "/v1/feedback",
                json={
                    "task": "money",
                    "inference_id": "abc",
                    "signal": "thumbs_up",
                    "user_id": "ana\x00",
                },
            ),
        }
        for case, response in refused.items():
            assert response.status_code in (400, 422), (case, response.status_code, response.text)
            error = response.json()["error"]
            assert error["type"] == "invalid_request_error", case
            if "too long" in case:
                assert str(MAX_TEXT_CHARS) in error["message"], (case, error["message"])
            else:
                assert "NUL" in error["message"], (case, error["message"])
        assert s.host.calls == 0, "a refused request must not run the model"

        long_but_valid = "please wire the deposit today " * 1_000  # 30,000 characters
        answer = s.http.post(
            "/v1/chat/completions",
            json={
                "model": "money",
                "messages": [{"role": "user", "content": long_but_valid}],
                "user": "ana",
            },
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["choices"][0]["message"]["content"] in ("yes", "no")
        assert s.host.calls == 1
    plane.wait_for(lambda status: stored(status, "inference") == 1)
    reviewer = create_token(plane, "reviewer")
    seen = httpx.get(
        f"{plane.url}/v1/review/items/{answer.json()['id']}", headers=bearer(reviewer), timeout=30
    ).json()
    assert seen["input"] == long_but_valid
    assert seen["output"] == answer.json()["choices"][0]["message"]["content"]


class Load:
    """Steady requests from a few threads; records every answer in order, per thread."""

    def __init__(self, url: str, token: str, threads: int = 3) -> None:
        self.url, self.token = url, token
        self.stop = threading.Event()
        self.answers: list[list[tuple[float, int, str | None]]] = [[] for _ in range(threads)]
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def _run(self, index: int) -> None:
        with httpx.Client(timeout=30, headers=bearer(self.token)) as client:
            n = 0
            while not self.stop.is_set():
                n += 1
                try:
                    response = client.post(
                        f"{self.url}/v1/generate",
                        json={"task": "money", "input": f"request {index}-{n}: pay the invoice"},
                    )
                    adapter = response.json().get("adapter_id") if response.is_success else None
                    self.answers[index].append((time.monotonic(), response.status_code, adapter))
                except httpx.HTTPError:
                    self.answers[index].append((time.monotonic(), 0, None))

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)


def more_examples(plane: ControlPlaneProcess, tmp_path: Path) -> None:
    data = tmp_path / "more.jsonl"
    data.write_text(
        "\n".join(
            json.dumps(
                {
                    "input": f"invoice {i}: "
                    + ("transfer the deposit" if i % 2 else "see you friday"),
                    "output": "yes" if i % 2 else "no",
                }
            )
            for i in range(30)
        )
        + "\n"
    )
    assert plane.cli("import", "money", "--data", str(data)).returncode == 0
    plane.wait_for(lambda s: s["tasks"]["money"]["ground_truth"] == 90)


def wait_served(server: InferenceServerProcess, adapter: str | None) -> float:
    started = time.monotonic()
    deadline = started + 30
    while time.monotonic() < deadline:
        if server.health()["champions"].get("money") == adapter:
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"server still serves {server.health()['champions']}, not {adapter}")


def test_champion_swaps_in_place_under_load_with_no_failed_request_and_rolls_back(
    plane, server, tmp_path
):
    define_task(plane, tmp_path, "money")
    import_examples(plane, tmp_path, "money")
    assert plane.cli("cycle", "run", "money", "--wait").returncode == 0
    first = plane.get("/v1/tasks/money")["champion"]
    assert first is not None
    server.start()  # starts with the champion already promoted
    assert server.health()["champions"] == {"money": first}
    more_examples(plane, tmp_path)
    app = create_token(plane, "app")
    with Load(server.url, app) as load:
        time.sleep(2)
        result = plane.cli("cycle", "run", "money", "--wait")
        assert result.returncode == 0 and "verdict promote" in result.stdout, result.stdout
        second = plane.get("/v1/tasks/money")["champion"]
        assert second not in (None, first)
        wait_served(server, second)
        time.sleep(2)
        assert plane.cli("rollback", "money").returncode == 0
        wait_served(server, first)
        time.sleep(2)
    answers = [a for thread in load.answers for a in thread]
    failed = [a for a in answers if a[1] != 200]
    assert not failed, f"{len(failed)} of {len(answers)} requests failed: {failed[:5]}"
    assert len(answers) > 30
    for thread in load.answers:  # each caller sees first → second → first, never flapping
        served = [adapter for _, _, adapter in thread]
        runs = [a for i, a in enumerate(served) if i == 0 or served[i - 1] != a]
        assert runs == [first, second, first], runs
    assert server.health()["swaps"] >= 3


def test_down_stops_the_servers_and_the_control_plane(plane, server):
    server.start()
    assert len(list((plane.home / "run").glob(f"server-*-{server.port}.json"))) == 1
    result = plane.cli("down")
    assert result.returncode == 0, result.stderr
    assert "stopped server" in result.stdout and "stopped control-plane" in result.stdout
    assert server.process.wait(30) == 0 and plane.process.wait(30) == 0
    assert not list((plane.home / "run").glob("*.json"))

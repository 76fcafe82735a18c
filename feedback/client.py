"""The Python SDK apps embed to send inference, feedback and correction events.

Events are validated locally and queued in memory; a background sender thread batches them
to the broker with retries. Callers never wait on the network: ``emit`` only appends to the
queue (when the queue is full, it spills to the disk spool), so a broker that is down, slow or
silent costs an app nothing. What cannot be delivered is written to a disk spool and re-sent
once the broker is back, so no event is lost: an event leaves the client only once the broker
acknowledged it or it is fsynced in the spool. Re-sending is safe: the store deduplicates by
event_id.

    with FlywheelClient("127.0.0.1:19092", spool_dir=Path(".flywheel/spool")) as client:
        inference_id = client.log_inference(task="spam", input=email, output="ham",
                                            base_model="smollm2-135m-instruct")
        client.send_feedback(task="spam", inference_id=inference_id, signal="thumbs_up")
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError
from pydantic import ValidationError

from feedback.exceptions import InvalidEventError
from feedback.spool import Spool
from schemas import CorrectionEvent, EventEnvelope, FeedbackEvent, InferenceEvent
from schemas.topics import TOPIC_OF_TYPE
from schemas.validation import explain

log = logging.getLogger(__name__)
Record = tuple[str, bytes, bytes]


@dataclass(frozen=True, slots=True)
class FlushResult:
    sent: int
    spooled: int


class FlywheelClient:
    """Capture events from an app. Thread-safe; ``close()`` (or ``with``) sends what is left."""

    def __init__(
        self,
        bootstrap: str,
        *,
        spool_dir: Path,
        batch_size: int = 500,
        linger_s: float = 0.2,
        send_timeout_s: float = 10.0,
        retries: int = 3,
        max_buffered: int = 10_000,
    ) -> None:
        self.bootstrap = bootstrap
        self.batch_size = batch_size  # this many queued events wake the sender early
        self.linger_s = linger_s  # otherwise the sender wakes this often
        self.send_timeout_s = send_timeout_s  # one delivery's deadline, retries included
        self.retries = retries
        self.max_buffered = max_buffered  # beyond this, queued events spill to the spool
        self.spool = Spool(spool_dir)
        self._buffer: list[Record] = []
        self._lock = threading.Lock()  # guards _buffer only: never held during any I/O
        self._sending = threading.Lock()  # one delivery at a time owns the producer and spool
        self._producer: KafkaProducer | None = None
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._sender = threading.Thread(
            target=self._send_in_background, name="flywheel-sdk-sender", daemon=True
        )
        self._sender.start()

    # -- building events ------------------------------------------------------------------

    def log_inference(
        self,
        *,
        task: str,
        input: str,
        output: str,
        base_model: str,
        adapter_id: str | None = None,
        latency_ms: float | None = None,
        mean_logprob: float | None = None,
        metadata: dict[str, Any] | None = None,
        origin: str = "production",
        event_id: str | None = None,
        occurred_at: datetime | None = None,
    ) -> str:
        """Record a model output; returns its event id (the inference id feedback refers to)."""
        return self._build(
            InferenceEvent,
            event_id,
            occurred_at,
            task=task,
            input=input,
            output=output,
            base_model=base_model,
            adapter_id=adapter_id,
            latency_ms=latency_ms,
            mean_logprob=mean_logprob,
            metadata=metadata or {},
            origin=origin,
        )

    def send_feedback(
        self,
        *,
        task: str,
        inference_id: str,
        signal: str,
        rating: int | None = None,
        edited_output: str | None = None,
        user_id: str | None = None,
        event_id: str | None = None,
    ) -> str:
        return self._build(
            FeedbackEvent,
            event_id,
            None,
            task=task,
            inference_id=inference_id,
            signal=signal,
            rating=rating,
            edited_output=edited_output,
            user_id=user_id,
        )

    def send_correction(
        self,
        *,
        task: str,
        inference_id: str,
        corrected_output: str,
        reviewer: str,
        note: str | None = None,
        event_id: str | None = None,
    ) -> str:
        return self._build(
            CorrectionEvent,
            event_id,
            None,
            task=task,
            inference_id=inference_id,
            corrected_output=corrected_output,
            reviewer=reviewer,
            note=note,
        )

    def _build(
        self,
        model: type[EventEnvelope],
        event_id: str | None,
        occurred_at: datetime | None,
        **fields: Any,
    ) -> str:
        try:
            event = model(
                event_id=event_id or uuid.uuid4().hex,
                occurred_at=occurred_at or datetime.now(UTC),
                **fields,
            )
        except ValidationError as error:
            raise InvalidEventError(f"invalid {model.__name__}: {explain(error)}") from error
        self.emit(event)
        return event.event_id

    # -- sending --------------------------------------------------------------------------

    def emit(self, event: EventEnvelope) -> None:
        """Queue a validated event for the sender; returns at once, whatever the broker does.

        Only when ``max_buffered`` events wait (the broker has been failing a while) does the
        caller write them to the disk spool itself: bounded memory, and still nothing lost.
        """
        record = (
            TOPIC_OF_TYPE[event.type],
            event.task.encode(),  # type: ignore[attr-defined]
            event.model_dump_json().encode(),
        )
        with self._lock:
            self._buffer.append(record)
            queued = len(self._buffer)
            overflow = self._take_locked() if queued >= self.max_buffered else []
        if overflow:
            self.spool.append(overflow)
            log.warning("%d events queued while the broker lags: spooled to disk", len(overflow))
        elif queued >= self.batch_size:
            self._wake.set()

    def flush(self, timeout_s: float | None = None) -> FlushResult:
        """Send what is queued (and what waits in the spool); what fails goes to the spool.

        This call waits on the broker, up to about ``timeout_s`` (default ``send_timeout_s``);
        ``emit`` never does, even while a flush runs.
        """
        return self._flush(timeout_s, interrupt=None)

    @property
    def spooled(self) -> int:
        """Events waiting in the disk spool for the broker."""
        return len(self.spool)

    def _flush(self, timeout_s: float | None, interrupt: threading.Event | None) -> FlushResult:
        with self._sending:
            with self._lock:
                batch = self._take_locked()
            return self._send(batch, timeout_s, interrupt)

    def _take_locked(self) -> list[Record]:
        batch, self._buffer = self._buffer, []
        return batch

    def _send(
        self, batch: list[Record], timeout_s: float | None, interrupt: threading.Event | None
    ) -> FlushResult:
        """Deliver a batch, spooling it unless every event was acknowledged; then, if the
        broker took it, replay the spool. Call with ``_sending`` held."""
        sent = 0
        try:
            sent = self._deliver(batch, timeout_s, interrupt) if batch else 0
        finally:  # whatever went wrong, an event taken from the queue is sent or on disk
            if sent != len(batch):
                self.spool.append(batch)  # all of it: duplicates are harmless, loss is not
        if sent != len(batch):
            return FlushResult(sent=0, spooled=len(batch))
        if self.spool.segments():
            sent += self._replay_spool(timeout_s, interrupt)
        return FlushResult(sent=sent, spooled=0)

    def _replay_spool(self, timeout_s: float | None, interrupt: threading.Event | None) -> int:
        replayed = 0
        for segment, records in self.spool.drain():
            if self._deliver(records, timeout_s, interrupt) != len(records):
                break  # still unreachable: keep this and later segments
            self.spool.delivered(segment)
            replayed += len(records)
        if replayed:
            log.info("re-sent %d spooled events", replayed)
        return replayed

    def _deliver(
        self, records: list[Record], timeout_s: float | None, interrupt: threading.Event | None
    ) -> int:
        """Send with retries until a deadline, or until ``interrupt`` is set between two
        attempts; returns len(records) when all were acknowledged, else 0."""
        deadline = time.monotonic() + (timeout_s or self.send_timeout_s)
        for attempt in range(self.retries):
            if not self._reachable():
                return 0  # a refused connection will not change within a retry's backoff
            producer = self._ensure_producer()
            if producer is not None:
                try:
                    futures = [producer.send(t, v, key=k) for t, k, v in records]
                    producer.flush(timeout=max(deadline - time.monotonic(), 0.1))
                    if all(f.succeeded() for f in futures):
                        return len(records)
                except KafkaError as error:
                    log.warning("send failed (attempt %d): %s", attempt + 1, error)
                self._drop_producer()
            backoff = min(0.2 * 2**attempt, 1.0)
            if time.monotonic() + backoff >= deadline:
                break  # a broker that accepts and never answers must not hold us longer
            if interrupt is None:
                time.sleep(backoff)
            elif interrupt.wait(backoff):
                break  # closing: close() makes its own attempt right after
        return 0

    def _reachable(self) -> bool:
        """A cheap TCP probe of the bootstrap servers, so an outage costs milliseconds."""
        for server in self.bootstrap.split(","):
            host, _, port = server.strip().rpartition(":")
            try:
                with socket.create_connection((host or "localhost", int(port)), timeout=1.0):
                    return True
            except (OSError, ValueError):
                continue
        return False

    def _ensure_producer(self) -> KafkaProducer | None:
        if self._producer is None:
            try:
                self._producer = KafkaProducer(
                    bootstrap_servers=self.bootstrap,
                    client_id="flywheel-sdk",
                    linger_ms=10,
                    retries=2,
                    max_block_ms=2_000,
                    request_timeout_ms=5_000,
                    reconnect_backoff_max_ms=1_000,
                    bootstrap_timeout_ms=2_000,  # the default 30 s against a silent broker
                )
            except KafkaError as error:
                log.warning("broker %s unreachable: %s", self.bootstrap, error)
                return None
        return self._producer

    def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(KafkaError):
                producer.close(timeout=1)

    def _send_in_background(self) -> None:
        """The sender: wakes every ``linger_s`` or when a batch is full, and does all the
        network I/O callers must not wait for."""
        while True:
            self._wake.wait(self.linger_s)
            self._wake.clear()
            if self._closed.is_set():
                return  # close() sends what is left
            try:
                self._flush(None, interrupt=self._closed)
            except Exception:  # never let the sender die silently; the batch was spooled
                log.exception("background send failed")

    def close(self, timeout_s: float | None = None) -> FlushResult:
        """Stop the sender, then deliver or spool everything still queued."""
        self._closed.set()
        self._wake.set()
        self._sender.join()  # a delivery in progress ends by its own deadline
        result = self.flush(timeout_s)
        with self._sending:
            self._drop_producer()
        return result

    def __enter__(self) -> FlywheelClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

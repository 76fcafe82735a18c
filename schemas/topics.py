"""Kafka topics of the contract. Values are UTF-8 JSON; keys are the task name."""

INFERENCE = "flywheel.inference"
FEEDBACK = "flywheel.feedback"
CORRECTIONS = "flywheel.corrections"
DEADLETTER = "flywheel.deadletter"
PROMOTIONS = "flywheel.promotions"
LIVE_COUNTS = "flywheel.live_counts"
"""Per task, adapter version and window: outcome counts from the live monitor (JSON)."""

TOPIC_OF_TYPE = {"inference": INFERENCE, "feedback": FEEDBACK, "correction": CORRECTIONS}
TYPE_OF_TOPIC = {topic: event_type for event_type, topic in TOPIC_OF_TYPE.items()}
ALL_TOPICS = (INFERENCE, FEEDBACK, CORRECTIONS, DEADLETTER, PROMOTIONS, LIVE_COUNTS)

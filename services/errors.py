"""Errors of the long-running processes; each message says what to do about it."""


class ServiceError(Exception):
    """Base class of every error raised by ``services``."""


class PortInUseError(ServiceError):
    """A port Flywheel must bind is already taken."""


class BrokerUnavailableError(ServiceError):
    """Kafka (embedded or external) cannot be reached."""

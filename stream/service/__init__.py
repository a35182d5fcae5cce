"""The Kafka service: consumer loop and publishing (app), per-partition processing, state changelog."""

from stream.service.app import Service, ServiceError, detector_factory

__all__ = ["Service", "ServiceError", "detector_factory"]

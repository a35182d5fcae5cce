"""The Kafka service: consumer loop and publishing (app), per-partition processing, state changelog, codec,
settings, metrics and health. Import what you need from its modules, e.g. ``stream.service.app.Service``."""

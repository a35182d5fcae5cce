"""The demo from start to end: broker, model, topics, fleet, service, live progress, report; Ctrl-C safe.

Order: start (or reuse) a broker, load the cached demo model or train one on a synthetic fleet (bounded
time), create this run's topics, then run the service in-process while the fleet publishes at a fixed rate
and a read_committed consumer reads the scores back. When every sent event has a score (or on Ctrl-C /
SIGTERM) the service leaves its group, and the report compares the flags with the injected anomalies.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import logging
import signal
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from rnncore.calibration_prior import PRIOR_WARMUP_EVENTS, prior_of
from rnncore.model.weights import ModelWeights
from stream.data.synthetic import SyntheticFleet, generate_fleet
from stream.demo.evaluation import Evaluation, evaluate, flags_from_scores
from stream.demo.plot import pick_streams, plot_streams
from stream.demo.progress import ProgressLine
from stream.demo.scores import ScoreBook, collect_scores
from stream.errors import DemoError
from stream.fleet import FleetTruth, publish_fleet
from stream.local_broker import LocalBroker
from stream.service.app import Service
from stream.service.config import Guarantee, ServiceConfig

# Events of a live stream scored 0 while its calibration settles: the demo trains its model, whose calibration prior
# lets every stream score from its (PRIOR_WARMUP_EVENTS + 1)-th event (its first has no forecast to be surprised by).
LIVE_WARMUP_EVENTS = PRIOR_WARMUP_EVENTS + 1

logger = logging.getLogger(__name__)
EXIT_INTERRUPTED = 130
DRAIN_TIMEOUT_S = 60.0  # after the fleet is done, how long to wait for the last scores


@dataclass(frozen=True, kw_only=True)
class DemoSettings:
    """What the demo runs: fleet size and pace, where it writes, which broker and model."""

    streams: int = 100
    events_per_stream: int = 1000
    history_events: int = 2000  # each stream's clean history before the live part: what the model trains on
    rate: float = 2000.0
    partitions: int = 4
    out_dir: Path = Path(".cache/demo")
    bootstrap: str | None = None
    train_minutes: float = 1.0
    retrain: bool = False
    threshold: float = 0.99
    guarantee: Guarantee = "exactly_once"
    seed: int = 1
    plot_streams: int = 4


@dataclass
class DemoReport:
    """What the demo measured; also written to ``summary.json`` in the out dir."""

    sent: int
    scored: int
    seconds: float
    evaluation: Evaluation
    plot: Path | None

    def as_dict(self) -> dict[str, object]:
        e = self.evaluation
        return {
            "sent": self.sent,
            "scored": self.scored,
            "seconds": round(self.seconds, 2),
            "anomaly_recall": e.anomaly_recall,
            "flag_precision": e.flag_precision,
            "event_precision": e.event_precision,
            "event_recall": e.event_recall,
            "flagged_events": e.flagged_events,
            "anomalies": dict(e.anomalies),
            "anomalies_found": dict(e.anomalies_found),
            "plot": str(self.plot) if self.plot else None,
        }


class DemoInterruptedError(Exception):
    """Ctrl-C or SIGTERM arrived: stop everything and exit 130."""


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Let SIGTERM unwind like Ctrl-C in the synchronous phases (broker start, training), so cleanup runs."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def demo_fleet(settings: DemoSettings) -> SyntheticFleet:
    """The demo's fleet: per stream a clean history (``history_events``, the training logs) then the live part
    (``events_per_stream``, sent to the service), with the injected anomalies after the live part's warm-up."""
    history = settings.history_events
    return generate_fleet(
        settings.streams,
        history + settings.events_per_stream,
        seed=settings.seed,
        clean_prefix=history + min(LIVE_WARMUP_EVENTS, settings.events_per_stream // 5),
    )


def _write_history(fleet: SyntheticFleet, history: int, path: Path) -> Path:
    """The fleet's first ``history`` events per stream as a CSV event log (``key,time,value``), in time order."""
    rows = sorted(
        (float(s.times[i]), s.key, float(s.values[i, 0]))
        for s in fleet.streams
        for i in range(min(history, len(s.times)))
    )
    with path.open("w", newline="") as handle:
        table = csv.writer(handle)
        table.writerow(["key", "time", "value"])
        table.writerows((key, repr(t), f"{v:.6g}") for t, key, v in rows)
    return path


def demo_model(settings: DemoSettings, fleet: SyntheticFleet) -> ModelWeights:
    """The model for this fleet in ``out_dir/model``: trained by `rnnwatch train` on the streams' clean history
    (so each stream has its envelope, as a user's sensors have theirs), reused while the fleet is the same."""
    from rnncore.errors import ArtifactError
    from rnncore.model.artifact import load_artifact

    model_dir = settings.out_dir / "model"
    fingerprint = {"seed": settings.seed, "streams": settings.streams, "history_events": settings.history_events}
    stamp = settings.out_dir / "model-fleet.json"
    same_fleet = stamp.is_file() and json.loads(stamp.read_text()) == fingerprint
    if not settings.retrain and same_fleet and model_dir.exists():
        try:
            weights = load_artifact(model_dir)
            if prior_of(weights.metadata) is not None:
                print(f"model: reusing {model_dir} (pass --retrain to train a new one)")
                return weights
            # without the prior its streams would score 0 for 200 events, and the fleet's anomalies start after 31
            print(f"model: cached model {model_dir} has no calibration prior (trained before it); training a new one")
        except ArtifactError as error:
            print(f"model: cached model unusable ({error}); training a new one")
    log = _write_history(fleet, settings.history_events, settings.out_dir / "history.csv")
    print(
        f"model: rnnwatch train on {settings.history_events} clean history events per stream ({log}) for up to "
        f"{settings.train_minutes:g} min -> {model_dir}"
    )
    from stream.cli import main as cli_main

    code = cli_main(
        [
            "--log-level",
            "WARNING",
            "train",
            "--logs",
            str(log),
            "--out",
            str(model_dir),
            "--train-minutes",
            str(settings.train_minutes),
            "--replace-incompatible",  # the demo's own model directory: a retrain may change the layout
        ]
    )
    if code != 0:
        raise DemoError(f"training the demo model failed (exit {code}); see the lines above")
    stamp.write_text(json.dumps(fingerprint) + "\n")
    return load_artifact(model_dir)


async def _create_topics(bootstrap: str, names: dict[str, int]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=n, replication_factor=1) for name, n in names.items()])
    finally:
        await admin.close()


class _LiveRun:
    """The asynchronous part: topics, service, fleet, score reader and the progress line."""

    def __init__(self, settings: DemoSettings, bootstrap: str, weights: ModelWeights, fleet: SyntheticFleet) -> None:
        self.settings = settings
        self.bootstrap = bootstrap
        self.weights = weights
        run = time.strftime("%Y%m%d-%H%M%S") + f"-{int(time.time() * 1000) % 1000:03d}"
        self.topics = {
            "input": f"rnnwatch-demo-{run}-events",
            "output": f"rnnwatch-demo-{run}-scores",
            "dead": f"rnnwatch-demo-{run}-dead-letters",
            "changelog": f"rnnwatch-demo-{run}-state",
        }
        self.run_id = run
        self.fleet = fleet
        self.truth = FleetTruth()
        self.book = ScoreBook()
        self.interrupted = asyncio.Event()

    def _service_config(self, metrics_port: int) -> ServiceConfig:
        t = self.topics
        return ServiceConfig(
            bootstrap_servers=self.bootstrap,
            input_topic=t["input"],
            output_topic=t["output"],
            dead_letter_topic=t["dead"],
            changelog_topic=t["changelog"],
            group_id=f"rnnwatch-demo-{self.run_id}",
            instance_id=f"demo-{self.run_id}",
            guarantee=self.settings.guarantee,
            anomaly_threshold=self.settings.threshold,
            metrics_host="127.0.0.1",
            metrics_port=metrics_port,
            session_timeout_ms=6000,
            model_dir=str(self.settings.out_dir / "model"),  # the trained envelope of every stream, and hot reload
        )

    async def run(self) -> float:
        """Run until every sent event is scored or an interrupt; returns the live seconds."""
        s = self.settings
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.interrupted.set)
        try:
            await _create_topics(
                self.bootstrap,
                {self.topics["input"]: s.partitions, self.topics["output"]: s.partitions, self.topics["dead"]: 1},
            )
            port = _free_port()
            service = Service(self._service_config(port), self.weights, serve_http=True)
            print(f"service: metrics on http://127.0.0.1:{port}/metrics; input topic {self.topics['input']}")
            started = time.monotonic()
            async with service:
                await self._drive(service)
            return time.monotonic() - started
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    async def _drive(self, service: Service) -> None:
        s = self.settings
        progress = ProgressLine(service.metrics, total=s.streams * s.events_per_stream)
        service_task = asyncio.create_task(service.run())
        collector_done = asyncio.Event()
        collector = asyncio.create_task(
            collect_scores(self.bootstrap, self.topics["output"], self.book, collector_done)
        )
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=5)
        await producer.start()
        fleet_stop = asyncio.Event()
        fleet_task = asyncio.create_task(
            publish_fleet(
                producer,
                self.topics["input"],
                self.fleet,
                rate=s.rate,
                stop=fleet_stop,
                truth=self.truth,
                start=s.history_events,
            )
        )
        interrupted = asyncio.create_task(self.interrupted.wait())
        drain_deadline: float | None = None
        try:
            while True:
                await asyncio.wait({service_task, interrupted}, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
                progress.show(self.truth.sent, self.book.anomalies)
                if self.interrupted.is_set() or service_task.done() or collector.done():
                    break
                if fleet_task.done():
                    drain_deadline = drain_deadline or time.monotonic() + DRAIN_TIMEOUT_S
                    if len(self.book.points) >= self.truth.sent or time.monotonic() > drain_deadline:
                        break
        finally:
            progress.finish()
            fleet_stop.set()
            interrupted.cancel()
            with contextlib.suppress(Exception):
                await fleet_task
            await producer.stop()
            service.request_stop()
            failure = None
            try:
                await service_task
            except Exception as error:  # ServiceError: reported below, cleanup goes on
                failure = error
            collector_done.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(collector, timeout=10)
        if self.interrupted.is_set():
            raise DemoInterruptedError
        if failure is not None:
            raise DemoError(f"the service stopped: {failure}")
        if collector.done() and not collector.cancelled() and collector.exception() is not None:
            raise DemoError(f"reading scores back failed: {collector.exception()}")


def _report(settings: DemoSettings, live: _LiveRun, seconds: float) -> DemoReport:
    streams = {stream.key: stream for stream in live.fleet.streams}
    flags = flags_from_scores(streams, live.truth.sent_events, live.book.flags())
    evaluation = evaluate(flags)
    plot = None
    if live.book.points:
        chosen = pick_streams(live.fleet.streams, settings.plot_streams)
        plot = plot_streams(
            settings.out_dir / "demo.png",
            chosen,
            live.truth.sent_events,
            live.book.points,
            settings.threshold,
            warmup_events=LIVE_WARMUP_EVENTS,
        )
    return DemoReport(
        sent=live.truth.sent, scored=len(live.book.points), seconds=seconds, evaluation=evaluation, plot=plot
    )


async def _check_reachable(bootstrap: str, timeout_ms: int = 10_000) -> None:
    """Fetch cluster metadata once; ``DemoError`` with the address if no broker answers."""
    from aiokafka.errors import KafkaError

    client = AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=timeout_ms)
    try:
        await asyncio.wait_for(client.start(), timeout_ms / 1000)
    except (KafkaError, OSError, TimeoutError) as error:
        raise DemoError(
            f"no Kafka broker answers at {bootstrap} ({type(error).__name__}); check the address, or leave out "
            "--bootstrap-servers and the demo starts a local broker"
        ) from None
    finally:
        await client.stop()


def run_demo(settings: DemoSettings) -> int:
    """Run the whole demo; returns the exit code (0 done, 130 interrupted); raises ``DemoError`` on failure."""
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    broker: LocalBroker | None = None
    with _sigterm_as_interrupt():
        try:
            bootstrap = settings.bootstrap
            if bootstrap is None:
                print("broker: starting a local Kafka broker (deploy/kafka/broker.sh) ...", flush=True)
                broker = LocalBroker(run_dir=settings.out_dir / "broker")
                bootstrap = broker.start()
            else:
                asyncio.run(_check_reachable(bootstrap))  # before training: a wrong address fails in seconds
            print(f"broker: {bootstrap}")
            fleet = demo_fleet(settings)
            weights = demo_model(settings, fleet)
            m = weights.config
            print(
                f"fleet: {settings.streams} streams x {settings.events_per_stream} events at {settings.rate:g} "
                f"events/s, injected spikes, level shifts, drift, frozen sensors and noise bursts; "
                f"model {m.cell} H={m.hidden_size} L={m.num_layers}; Ctrl-C stops"
            )
            live = _LiveRun(settings, bootstrap, weights, fleet)
            seconds = asyncio.run(live.run())
            report = _report(settings, live, seconds)
        except (KeyboardInterrupt, DemoInterruptedError):
            print("\ninterrupted: stopping", flush=True)
            return EXIT_INTERRUPTED
        finally:
            if broker is not None:
                print("broker: stopping", flush=True)
                broker.stop()
    summary = settings.out_dir / "summary.json"
    summary.write_text(json.dumps(report.as_dict(), indent=2) + "\n")
    rate = report.scored / report.seconds if report.seconds else 0.0
    print(
        f"\n== rnnwatch demo: {report.scored:,} of {report.sent:,} events scored in {report.seconds:.1f} s "
        f"({rate:,.0f} events/s), threshold {settings.threshold:g}"
    )
    print(report.evaluation.table())
    if report.plot:
        print(f"plot: {report.plot}")
    print(f"summary: {summary}")
    return 0

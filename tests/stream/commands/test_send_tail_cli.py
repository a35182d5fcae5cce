"""`rnnwatch send` and `rnnwatch tail`: what is sent is read back once, read_committed (bad usage: test_bad_usage)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from stream.cli import main


@pytest.mark.kafka
@pytest.mark.timeout(120)
def test_sent_logs_are_read_back_by_tail_and_a_missing_topic_is_one_line(
    tmp_path: Path, kafka_bootstrap: str, make_topic: Callable[..., str], capsys: pytest.CaptureFixture[str]
) -> None:
    topic = make_topic(partitions=2)
    log = tmp_path / "events.csv"
    log.write_text("key,time,value\n" + "".join(f"s{i % 3},{1000 + i},{i * 0.5}\n" for i in range(30)))
    boot = ["--bootstrap-servers", kafka_bootstrap, "--topic", topic]
    assert main(["send", "--logs", str(log), *boot]) == 0
    assert capsys.readouterr().out.startswith(f"sent 30 events of 3 streams to {topic}")
    assert main(["tail", *boot, "--count", "30", "--idle-seconds", "20"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted((e["key"], e["time"], e["value"]) for e in events) == sorted(
        (f"s{i % 3}", 1000.0 + i, i * 0.5) for i in range(30)
    )
    assert main(["tail", *boot, "--count", "31", "--idle-seconds", "2"]) == 1  # only 30 there
    assert "30 of 31 records" in capsys.readouterr().err
    assert main(["tail", "--bootstrap-servers", kafka_bootstrap, "--topic", "no-such-topic", "--count", "1"]) == 1
    err = capsys.readouterr().err
    assert "topic 'no-such-topic' does not exist" in err and err.count("\n") == 1

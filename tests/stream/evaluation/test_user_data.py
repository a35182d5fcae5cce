"""`rnnwatch evaluate`'s input checks, train/test split and metrics on tiny generated files."""

import numpy as np
import pytest

from stream.errors import UserDataError
from stream.evaluation.user_data import load_user_data
from stream.evaluation.user_report import delay_seconds, label_events, measure, pool, scored
from tests.stream.evaluation.labelled_files import write_labelled


def test_rows_before_the_first_label_train_and_the_rest_is_tested(tmp_path) -> None:
    write_labelled(tmp_path / "pump1.csv", n=600, fault=(350, 450))
    (f,) = load_user_data(tmp_path, "fault")
    assert f.key == "pump1" and f.features == ("s0", "s1") and f.train_source == "rows before the first label"
    assert f.train_values.shape == (350, 2) and f.values.shape == (250, 2)
    assert f.labels[:100].all() and not f.labels[100:].any()
    assert f.times[0] == f.train_times[-1] + 1


def test_a_normal_file_of_the_same_name_trains_and_the_whole_file_is_tested(tmp_path) -> None:
    data, normal = tmp_path / "data", tmp_path / "normal"
    data.mkdir(), normal.mkdir()
    write_labelled(data / "pump1.csv", n=300, fault=(10, 40))
    write_labelled(normal / "pump1.csv", n=400, fault=None, seed=1)
    (f,) = load_user_data(data, "fault", normal=normal)
    assert f.train_values.shape == (400, 2) and f.values.shape == (300, 2) and f.labels.sum() == 30
    write_labelled(normal / "other.csv", n=400, fault=None)
    with pytest.raises(UserDataError, match="match no file"):
        load_user_data(data, "fault", normal=normal)


def test_refusals_are_one_line_and_name_the_file(tmp_path) -> None:
    path = write_labelled(tmp_path / "a.csv")
    with pytest.raises(UserDataError, match=r"has no column 'label' \(name it with --label-column\)") as error:
        load_user_data(tmp_path, "label")
    assert "\n" not in str(error.value) and "a.csv" in str(error.value)
    text = path.read_text().splitlines()
    text[5] = text[5][: text[5].rindex(",")] + ",2"
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(UserDataError, match=r"a.csv:6: .*labels must be 0 or 1"):
        load_user_data(tmp_path, "fault")
    write_labelled(path)
    write_labelled(tmp_path / "b.csv", features=3)
    with pytest.raises(UserDataError, match="same feature columns"):
        load_user_data(tmp_path, "fault")


def test_too_few_rows_before_the_first_label_is_refused(tmp_path) -> None:
    write_labelled(tmp_path / "a.csv", fault=(20, 60))
    with pytest.raises(UserDataError, match="--normal DIR"):
        load_user_data(tmp_path, "fault")


def test_metrics_per_file_and_pooled() -> None:
    labels = np.zeros(200, dtype=np.int64)
    labels[50:70] = 1
    labels[120:160] = 1
    assert label_events(labels) == [("anomaly", 50, 70), ("anomaly", 120, 160)]
    score = np.zeros(200)
    score[55:70] = 2.0  # caught 5 rows late
    score[10] = 2.0  # one false alarm
    times = np.arange(200) * 2.0
    s = scored("f", times, labels, score, threshold=2.0)
    m = measure(s)
    assert m["event_recall"] == 0.5 and m["false_alarm"] == pytest.approx(1 / 140)
    assert m["missed"] == pytest.approx(45 / 60) and m["delay_median"] == 5.0 and m["delay_seconds"] == 10.0
    assert m["best_f1"] >= m["f1"]
    assert m["false_runs_per_hour"] == pytest.approx(1 / (140 * 2.0 / 3600))  # one false run in 280 s of normal
    assert delay_seconds(np.zeros(200, dtype=bool), times, s.events) != delay_seconds(s.score >= 1, times, s.events)
    both = measure(pool([s, s]))
    assert both["events"] == 4 and both["f1"] == pytest.approx(m["f1"])
    # the false alarm at row 10 is before the first fault; a flag after the first fault counts after it
    assert m["false_alarm_before"] == pytest.approx(1 / 50) and m["false_alarm_after"] == 0.0
    late = scored("g", times, labels, np.where(np.arange(200) == 100, 2.0, score), threshold=2.0)
    assert measure(late)["false_alarm_after"] == pytest.approx(1 / 90)
    assert measure(pool([s, late]))["false_alarm_before"] == pytest.approx(2 / 100)  # each file's own first fault


def test_iso_times_are_sorted_and_files_without_a_normal_file_use_their_own_rows(tmp_path) -> None:
    data, normal = tmp_path / "data", tmp_path / "normal"
    data.mkdir(), normal.mkdir()
    write_labelled(data / "a.csv", n=400, fault=(200, 250))
    write_labelled(normal / "a.csv", n=300, fault=None)
    minutes = range(9, -1, -1)  # written newest first
    rows = [f"2026-01-01T00:{m:02d}:{s:02d}Z,{m},{s},{int(m >= 6)}" for m in minutes for s in range(0, 60, 2)]
    (data / "b.csv").write_text("\n".join(["time,x,y,fault", *rows]) + "\n")
    a, b = load_user_data(data, "fault", normal=normal)
    assert a.train_source.startswith("normal file") and a.values.shape[0] == 400
    assert b.train_source == "rows before the first label" and b.train_values.shape == (180, 2)
    assert np.all(np.diff(b.times) == 2.0) and b.labels.all() and b.values[0].tolist() == [6.0, 0.0]


def test_false_runs_per_hour_keeps_each_files_sampling_when_pooled() -> None:
    labels = np.zeros(100, dtype=np.int64)
    score = np.zeros(100)
    score[[10, 50]] = 2.0  # two false runs per file
    fast = scored("fast", np.arange(100) * 2.0, labels, score, 1.0)  # 200 s of normal rows
    slow = scored("slow", 1e6 + np.arange(100) * 10.0, labels, score, 1.0)  # 1000 s
    assert measure(fast)["false_runs_per_hour"] == pytest.approx(2 / (200 / 3600))
    assert measure(pool([fast, slow]))["false_runs_per_hour"] == pytest.approx(4 / (1200 / 3600))


def test_semicolons_subfolders_and_ignored_columns(tmp_path) -> None:
    """Industrial recordings often come as `;`-separated files in one folder per rig, with a second label column
    (a change-point marker) that must not become a feature."""
    for rig in ("valve1", "valve2"):
        (tmp_path / rig).mkdir()
        rows = ["datetime;s0;s1;anomaly;changepoint"]
        for i in range(300):
            fault = int(i >= 200)
            stamp = f"2020-03-09 10:{i // 60:02d}:{i % 60:02d}"
            rows.append(f"{stamp};{i % 7};{i % 5 + 10 * fault};{fault};{int(i == 200)}")
        (tmp_path / rig / "0.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(UserDataError, match="same feature columns|has no column"):
        load_user_data(tmp_path, "anomaly", "datetime", ignore=("nope",))
    a, b = load_user_data(tmp_path, "anomaly", "datetime", ignore=("changepoint",))
    assert (a.key, b.key) == ("valve1/0", "valve2/0") and a.features == ("s0", "s1")
    assert a.train_values.shape == (200, 2) and a.labels.all() and a.values[0].tolist() == [200 % 7, 200 % 5 + 10]
    assert a.times[1] - a.times[0] == 1.0
    (f,) = load_user_data(tmp_path / "valve1", "anomaly", "datetime")  # without the flag it is a feature
    assert f.features == ("s0", "s1", "changepoint")
    normal = tmp_path / "valve1" / "normal"  # a --normal folder inside --data is not read as data
    normal.mkdir()
    (normal / "0.csv").write_text((tmp_path / "valve1" / "0.csv").read_text())
    (f,) = load_user_data(tmp_path / "valve1", "anomaly", "datetime", normal=normal, ignore=("changepoint",))
    assert f.key == "0" and f.train_source.startswith("normal file") and f.train_values.shape == (200, 2)


def test_a_file_trained_on_its_head_is_scored_whole_and_measured_from_its_first_label(tmp_path) -> None:
    """The scoring log holds the head first (the stream's state is warm when the fault starts, as in the service);
    a file with a normal file of its own is scored from its first row with nothing before it."""
    from stream.data.eventlog import read_event_logs
    from stream.evaluation.user_data import write_logs

    data, normal = tmp_path / "data", tmp_path / "normal"
    data.mkdir(), normal.mkdir()
    write_labelled(data / "own.csv", n=600, fault=(350, 450))
    write_labelled(data / "other.csv", n=300, fault=(10, 40))
    write_labelled(normal / "other.csv", n=400, fault=None, seed=1)
    files = {f.key: f for f in load_user_data(data, "fault", normal=normal)}
    assert files["own"].lead_rows == 350 and files["other"].lead_rows == 0
    write_logs(list(files.values()), tmp_path / "train.csv", tmp_path / "test.csv")
    records, _ = read_event_logs([tmp_path / "test.csv"])
    per_key: dict[str, list[float]] = {}
    for r in records:
        per_key.setdefault(str(r.key), []).append(float(r.time))
    assert len(per_key["own"]) == 600 and per_key["own"][:350] == files["own"].train_times.tolist()
    assert len(per_key["other"]) == 300 and per_key["other"] == files["other"].times.tolist()

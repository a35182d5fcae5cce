"""bench/ablation.py: the artifact variants score through `rnnwatch score` and the envelope alone is its part."""

from types import ModuleType

import numpy as np
import pytest

from rnncore.model.artifact import load_artifact
from rnncore.stages.envelope import EnvelopeParams
from rnncore.stages.selffit import SelfFitParams
from stream.evaluation.user_data import load_user_data
from stream.evaluation.user_eval import score_files
from tests.stream.evaluation.bench_scripts import BENCH, load_bench_script
from tests.stream.evaluation.labelled_files import write_labelled


def _bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """bench/ablation.py as its script runs it: with bench/ first on sys.path (it imports bench/seq2seq.py)."""
    monkeypatch.syspath_prepend(str(BENCH))
    return load_bench_script("ablation")


@pytest.mark.timeout(240)
def test_variants_are_the_products_parts(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    data.mkdir()
    write_labelled(data / "a.csv", n=2600, fault=(2100, 2200), seed=1)  # >= 1,500 normal rows: a training reference
    write_labelled(data / "b.csv", n=2600, fault=(2200, 2350), seed=2)
    files = load_user_data(data, "fault")
    work = tmp_path / "work"
    product = score_files(files, work, train_seconds=3)
    bench = _bench(monkeypatch)
    got = bench.variants(work, work / "model", work / "test.csv")
    assert set(got) == {"trained", "untrained", "network_only", "envelope_only"}
    lead = {f.key: f.lead_rows for f in files}  # each file trains on its head and is scored whole
    for s in product:
        trained, env, bare = got["trained"][s.name], got["envelope_only"][s.name], got["network_only"][s.name]
        assert lead[s.name] > 0 and trained.shape[0] == lead[s.name] + s.score.shape[0]
        assert np.allclose(trained[lead[s.name] :], s.score, atol=1e-6)  # the rescored product is the product
        # max(Detector, envelope), as documented, while the envelope-less copy has no self-fitted reference of its own
        bare_until = EnvelopeParams().warmup + SelfFitParams().fit_events + SelfFitParams().held_events
        assert np.allclose(trained[:bare_until], np.maximum(bare, env)[:bare_until], atol=1e-5)
        assert np.all(got["untrained"][s.name] >= env - 1e-5)  # the same envelope under other weights
    trained_w, random_w = load_artifact(work / "model"), load_artifact(work / "untrained")
    assert trained_w.config == random_w.config and random_w.metadata["version"] == "untrained-seed0"
    assert not all(np.array_equal(trained_w.params[k], random_w.params[k]) for k in trained_w.params)

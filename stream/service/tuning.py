"""Process-wide settings for a long-running, latency-sensitive scorer (garbage collector, aiokafka retry pause).

* Garbage collector: every micro-batch allocates tens of thousands of short-lived objects (consumer records,
  parsed events, score records). With CPython's defaults they triggered a full collection every ~15k events,
  and each one walked the ~200k objects left by imports, the JIT-compiled kernels and the model: 40-60 ms of
  stalled event loop, a third of the backlog-drain time. ``gc.freeze()`` moves what exists at start-up into
  the permanent generation (never scanned again); a larger young-generation threshold means fewer
  collections. Batch objects are acyclic: reference counting frees them, the collector only finds rare cycles.
* Transactions: right after a commit the coordinator is still writing the commit markers, and the next
  transaction's AddPartitionsToTxn is answered CONCURRENT_TRANSACTIONS. aiokafka retries after a fixed
  ``BACKOFF_OVERRIDE`` of 20 ms; that pause hit one transaction in five at 20k events/s. 2 ms retries cost
  the coordinator a few more small requests and take the pause off the event-to-score latency.
"""

from __future__ import annotations

import gc

import aiokafka.producer.sender

YOUNG_THRESHOLD = 50_000  # allocations between young collections (CPython default 700)
OLDER_THRESHOLDS = (20, 20)  # young collections per middle-generation collection, middle per full
CONCURRENT_TRANSACTIONS_RETRY_S = 0.002
_DEFAULT_THRESHOLDS = gc.get_threshold()


def freeze_startup_heap(young_threshold: int = YOUNG_THRESHOLD, *, collect: bool = True) -> None:
    """Collect once (unless ``collect`` is false), freeze every surviving object, and raise the collection
    thresholds (process-wide)."""
    if collect:
        gc.collect()
    gc.freeze()
    gc.set_threshold(young_threshold, *OLDER_THRESHOLDS)


def thaw_heap() -> None:
    """Undo ``freeze_startup_heap`` (when the service stops): frozen objects become collectable again."""
    gc.unfreeze()
    gc.set_threshold(*_DEFAULT_THRESHOLDS)


def shorten_transaction_retry(seconds: float = CONCURRENT_TRANSACTIONS_RETRY_S) -> None:
    """Retry a transaction start refused while the previous commit's markers are written after ``seconds``."""
    if hasattr(aiokafka.producer.sender, "BACKOFF_OVERRIDE"):  # aiokafka 0.8-0.14; a no-op where it is gone
        aiokafka.producer.sender.BACKOFF_OVERRIDE = seconds

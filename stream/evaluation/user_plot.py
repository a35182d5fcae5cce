"""Whether the pictures can be drawn: matplotlib comes with the ``demo`` extra (``pip install rnnwatch[demo]``);
without it `rnnwatch evaluate` skips its picture and says so, and ``--plot`` is refused (the picture itself:
``stream.evaluation.score_plot``).
"""

from __future__ import annotations


def have_matplotlib() -> bool:
    """Whether the optional plotting dependency is installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True

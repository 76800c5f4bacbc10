"""The report figures: every method's name under its points stays readable however many methods
and however long their names."""

import itertools

import matplotlib

matplotlib.use("Agg")  # as the figures module does; before pyplot picks a backend
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from r3f_experiments import figures  # noqa: E402
from r3f_experiments.results import Column  # noqa: E402

COLUMN = Column("CoLA", "valid", "mcc", "CoLA")


def tick_label_boxes(monkeypatch, tmp_path, methods):
    """The x tick labels' extents (display units) of a one-panel figure of ``methods``."""
    monkeypatch.setattr(plt, "close", lambda fig=None: None)  # keep the figure to measure it
    cells = {COLUMN.label: {m: [20.0 + i, 21.0 + i] for i, m in enumerate(methods)}}
    figures.distributions(str(tmp_path / "figure.png"), cells, [COLUMN], lambda y: y, "MCC (%)")
    fig = plt.gcf()
    renderer = fig.canvas.get_renderer()
    labels = fig.axes[0].get_xticklabels()
    assert [label.get_text().split("\n")[0] for label in labels] == methods
    boxes = [label.get_window_extent(renderer) for label in labels]
    plt.close("all")
    return boxes


@pytest.mark.parametrize(
    "methods",
    [
        ["std", "freelb"],
        ["std", "rdrop", "r3f", "r4f", "smart", "freelb"],
        ["std", "freelb", "freelb-r0", "freelb-r010", "freelb-r061"],
        ["std", "a-very-long-method-name", "another-long-method-name"],
    ],
)
def test_method_names_under_a_panel_do_not_overlap(methods, monkeypatch, tmp_path):
    boxes = tick_label_boxes(monkeypatch, tmp_path, methods)
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b), f"{methods}: tick labels overlap"

"""The display layer's registration: which function draws each view, and figures in IPython.

Imported by ``import cnnlab``, so it must stay light: the renderers are named as strings
(:func:`cnnlab.views.register`) and their modules, with matplotlib, are imported only when
something is drawn. Nothing here imports IPython either; it is used only when a shell is
already running.
"""

from __future__ import annotations

import sys

from cnnlab import views

RENDERERS = {
    "dataset.html": "cnnlab.notebook.data_views:dataset_html",
    "dataset.figure": "cnnlab.notebook.show:show_samples",
    "split.html": "cnnlab.notebook.data_views:split_html",
    "model.html": "cnnlab.notebook.data_views:model_html",
    "history.html": "cnnlab.notebook.result_views:history_html",
    "history.figure": "cnnlab.notebook.show:show_history",
    "metrics.html": "cnnlab.notebook.result_views:metrics_html",
    "predictions.html": "cnnlab.notebook.result_views:predictions_html",
    "figure.png": "cnnlab.notebook.hooks:figure_png",
}


def install() -> None:
    """Registers every renderer and, inside IPython, the PNG display of matplotlib figures."""
    for name, target in RENDERERS.items():
        views.register(name, target)
    install_figure_display()


def figure_png(figure: object) -> bytes:
    """A figure as PNG bytes for IPython, leaving a figure pyplot made open in pyplot."""
    from cnnlab.inspect.figures import figure_png as render

    return render(figure, release=False)


def install_figure_display() -> bool:
    """Makes IPython show a :class:`matplotlib.figure.Figure` as ``image/png``; True if done.

    cnnlab builds figures without pyplot, and IPython shows such a figure as an image only once
    the inline backend has registered its formatter, which happens when pyplot is imported: a
    notebook that never imports pyplot would show ``<Figure size 1200x400 with 2 Axes>``. The
    formatter is registered by class name (matplotlib stays unimported) and only where none is:
    an inline backend already set up keeps its own, so a figure is never shown twice; and since
    cnnlab's figures are not in pyplot's list, the inline backend's end-of-cell flush does not
    show them a second time either.
    """
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    formatters = getattr(getattr(shell, "display_formatter", None), "formatters", None)
    if not formatters or "image/png" not in formatters:
        return False
    png = formatters["image/png"]
    try:
        png.lookup_by_type("matplotlib.figure.Figure")
        return True  # the inline backend (or the user) already shows figures
    except KeyError:
        pass
    png.for_type_by_name(
        "matplotlib.figure", "Figure", lambda figure: views.render("figure.png", figure)
    )
    return True

"""What :func:`cnnlab.evaluate` returns: the metrics as a plain dict that also shows itself.

A ``dict`` subclass, so that ``json.dumps(metrics)``, ``metrics["accuracy"]`` and every reader of
``metrics.json`` keep working unchanged; it adds only a one-line ``repr`` and, in Jupyter, the
caret-style block with the confusion matrix (drawn by the display layer, see
:mod:`cnnlab.views`).
"""

from __future__ import annotations

from cnnlab import views


class Metrics(dict):
    """caret-style classification metrics (see :func:`classification_metrics`), as a dict."""

    def __repr__(self) -> str:
        """One line: ``Metrics(accuracy 98.1% [97.8%, 98.4%], 10,000 images, 10 classes, test)``.

        The full dict (confusion matrix, per-class table) is hundreds of numbers; ``dict(m)``
        or :func:`cnnlab.format_metrics` show them.
        """
        if "accuracy" not in self:
            return f"Metrics({dict.__repr__(self)})"
        text = f"accuracy {self['accuracy']:.1%}"
        interval = self.get("accuracy_ci")
        if interval and None not in interval:
            text += f" [{interval[0]:.1%}, {interval[1]:.1%}]"
        if self.get("n") is not None:
            text += f", {self['n']:,} images"
        classes = len(self.get("class_names") or ())
        text += f", {classes} class{'' if classes == 1 else 'es'}"
        where = self.get("dataset") or self.get("subset")
        return f"Metrics({text}" + (f", {where})" if where else ")")

    def _repr_html_(self) -> str:
        """Jupyter's view: accuracy and its interval, kappa, the per-class table, the matrix."""
        return views.render("metrics.html", self)

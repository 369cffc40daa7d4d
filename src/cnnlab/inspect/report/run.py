"""The plain-data files of a finished run folder, as the report and ``cnnlab plots`` read them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cnnlab.errors import CnnlabError
from cnnlab.files import read_json
from cnnlab.inspect.plots import read_history
from cnnlab.runs.reading import headline_subset


@dataclass
class RunFiles:
    """The plain-data files of a finished run folder."""

    path: Path
    config: dict
    metrics: dict
    run: dict
    history: list[dict]

    @property
    def headline_subset(self) -> str:
        return headline_subset(self.metrics)

    @property
    def class_names(self) -> list[str]:
        resolved = self.config.get("resolved") or {}
        if resolved.get("class_names"):
            return list(resolved["class_names"])
        return list(self.metrics[self.headline_subset].get("class_names") or [])


def read_run(run_dir: str | Path) -> RunFiles:
    """The files of a finished run; a one-line error when ``run_dir`` holds none."""
    path = Path(run_dir)
    for name in ("metrics.json", "run.json"):
        if not (path / name).is_file():
            raise CnnlabError(
                f"{path}: no finished run here ({name} missing); train first or pass the "
                "folder of a finished run"
            )
    config_path, history_path = path / "config.json", path / "history.csv"
    return RunFiles(
        path=path,
        config=read_json(config_path, "run file") if config_path.is_file() else {},
        metrics=read_json(path / "metrics.json", "run file"),
        run=read_json(path / "run.json", "run file"),
        history=read_history(history_path) if history_path.is_file() else [],
    )

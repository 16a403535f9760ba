"""``nbflow/run_end.py``'s choice of a run's report maker: the starter's word, else
``[tool.nbflow] report`` (the one place that setting is read). The report itself is
tested end to end in ``tests/e2e/test_report_everywhere.py``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from nbflow.config import Config
from nbflow.run_end import report_maker


def test_the_starters_word_wins_and_report_true_decides_when_it_gave_none(tmp_path: Path) -> None:
    notebook = tmp_path / "p.ipynb"
    unset = Config.for_folder(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[tool.nbflow]\nreport = true\n")
    reporting = Config.for_folder(tmp_path)
    assert (unset.report, reporting.report) == (False, True)

    assert report_maker(unset, notebook, None) is None
    assert callable(report_maker(reporting, notebook, None))
    assert report_maker(reporting, notebook, False) is None  # --no-report
    assert callable(report_maker(unset, notebook, True))  # --report

    def own(run_id: int) -> Path:
        return tmp_path / f"{run_id}.html"

    assert report_maker(unset, notebook, own) is own
    assert report_maker(dataclasses.replace(reporting, report=False), notebook, own) is own

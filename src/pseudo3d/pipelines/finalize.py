"""The end of every build, whatever the runner: dataset-level files, then the QA report."""

from __future__ import annotations

import logging
from typing import Any

from pseudo3d.config import BuildConfig
from pseudo3d.pipelines.dataset_files import write_dataset_files
from pseudo3d.storage import Storage

log = logging.getLogger(__name__)


def finalize_dataset(storage: Storage, config: BuildConfig, *, report: bool = True) -> tuple[dict[str, Any], str | None]:
    """Write the card (dataset.json) from the commit markers, then ``qa/report.html``. Returns (the card, the report's path or None). A report that cannot be
    drawn is logged and skipped: it never costs the dataset."""
    card = write_dataset_files(storage, config)
    if not report:
        return card, None
    from pseudo3d.qa.report import write_report

    try:
        return card, write_report(storage, flame_model=config.reconstruct.flame_model)
    except Exception as exc:  # noqa: BLE001 - the dataset is complete; the report can be redrawn with `pseudo3d qa`
        log.error("the QA report could not be written (%s: %s); run `pseudo3d qa %s` to retry", type(exc).__name__,
                  exc, storage.url, exc_info=log.isEnabledFor(logging.DEBUG))
        return card, None

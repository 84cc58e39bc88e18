"""The dataset QA report (``DATASET/qa/report.html``) and the QA summary (text and JSON).

``write_report(dataset_dir, gallery_size=6)`` writes the self-contained HTML page;
``qa_summary(dataset_dir)`` returns a JSON-able dict for dashboards; ``format_summary(summary)``
renders that dict as a few aligned lines for a terminal; ``describe_dataset`` and
``describe_shard`` are ``pseudo3d inspect``'s longer texts.
"""

from pseudo3d.qa.report.page import write_report
from pseudo3d.qa.report.summary import describe_dataset, describe_shard, format_summary, qa_summary

__all__ = ["describe_dataset", "describe_shard", "format_summary", "qa_summary", "write_report"]

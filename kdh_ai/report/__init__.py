"""Reports built from a job: the metrics of a job, the client quality report, trainee feedback.

Unlike :mod:`kdh_ai.quality` (pure functions on plain data), this package reads job directories.
"""

from __future__ import annotations

from kdh_ai.report.client import ReportError, report_paths, write_client_report, write_pdf
from kdh_ai.report.feedback import FeedbackError, write_feedback
from kdh_ai.report.metrics import annotator_table, job_metrics

__all__ = ["FeedbackError", "ReportError", "annotator_table", "job_metrics", "report_paths", "write_client_report",
           "write_feedback", "write_pdf"]

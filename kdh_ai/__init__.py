"""kdh_ai: pre-labeling, routing, Label Studio and quality measurement for an AI data-services hub.

The flow, each stage reading and writing a job directory::

    ingest -> prelabel -> route -> push (Label Studio) -> pull -> quality -> deliver / report
"""

from __future__ import annotations

import logging

from kdh_ai.offline import enforce_offline

enforce_offline()  # before anything imports onnxruntime: no telemetry, no model hub (see kdh_ai.offline)

from kdh_ai.items import Item, read_items
from kdh_ai.job import Job
from kdh_ai.records import Annotation, GoldAnswer, Prediction, PushedTask, Role, RoleRecord, TaskRole

__all__ = ["Annotation", "GoldAnswer", "Item", "Job", "Prediction", "PushedTask", "Role", "RoleRecord", "TaskRole",
           "__version__", "read_items"]

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

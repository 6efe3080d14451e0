"""How much of each recording people checked, and what their work cost per minute of audio.

A long recording is cut into work segments; routing sends only the uncertain ones to people. Two questions
follow for each file, answered here from one row per segment (columns ``item``, ``start``, ``end``,
``checked``; optional ``work_s``, the seconds people spent on it):

* **coverage**: how many of its segments and seconds people checked (:func:`review_coverage`);
* **cost**: human seconds per minute of the file's audio, checked or not (``human_s_per_audio_min``): the
  price of delivering that minute, which segment routing lowers by checking only part of it.

How fast people are on what they do check, with and without the model's pre-labels, is
:func:`kdh_ai.quality.effort_per_audio_minute`; how wrong the model was on a checked segment is
:func:`kdh_ai.quality.item_error_rates` over the segments (model text against the people's).

Example:
    >>> segs = pd.DataFrame({"item": ["talk"] * 3, "start": [0.0, 20.0, 45.0], "end": [20.0, 45.0, 60.0],
    ...                      "checked": [False, True, False], "work_s": [0.0, 75.0, 0.0]})
    >>> row = review_coverage(segs).loc["talk"]
    >>> int(row.checked_segments), int(row.segments), round(float(row.checked_share), 3), float(row.human_s_per_audio_min)
    (1, 3, 0.417, 75.0)
"""

from __future__ import annotations

import pandas as pd

from ._common import check_columns, preview

__all__ = ["review_coverage"]


def review_coverage(df: pd.DataFrame, *, checked_column: str = "checked",
                    work_column: str | None = "work_s") -> pd.DataFrame:
    """Per file: its audio, its segments, and how much of it people checked.

    Args:
        df: One row per work segment (or per short clip) with ``item``, ``start``, ``end`` (seconds) and
            the boolean ``checked_column``; optionally ``work_column`` (seconds people spent on the segment;
            missing values count as 0).
        checked_column: Name of the boolean column saying whether people checked the segment.
        work_column: Name of the column of human seconds (``None``, or a column not in the frame: no cost
            columns).

    Returns:
        A DataFrame indexed by ``item`` (in order of first appearance) with ``audio_s``, ``segments``,
        ``checked_segments``, ``checked_s``, ``checked_share`` (of the audio seconds), and with a work column
        ``human_s`` and ``human_s_per_audio_min`` (human seconds per minute of the file's audio).

    Raises:
        ValueError: A missing column, a segment that ends before it starts, a non-boolean ``checked`` value, a
            negative work time (the message names the rows), or a file of zero length.

    Example:
        >>> review_coverage(pd.DataFrame({"item": ["a", "a"], "start": [0.0, 30.0], "end": [30.0, 40.0],
        ...                               "checked": [True, True]}), work_column=None)[["checked_share"]]
              checked_share
        item               
        a               1.0
    """
    check_columns(df, ("item", "start", "end", checked_column))
    start = pd.to_numeric(df["start"], errors="coerce")
    end = pd.to_numeric(df["end"], errors="coerce")
    bad = df.index[~(end >= start) | start.isna()]
    if len(bad):
        raise ValueError(f"segments need numeric start <= end; rows {preview(bad)} (items "
                         f"{preview(df.loc[bad, 'item'].tolist())}) do not have them")
    flags = df[checked_column]
    not_bool = df.index[~flags.map(lambda v: isinstance(v, bool) or type(v).__name__ == "bool_")]
    if len(not_bool):
        raise ValueError(f"{checked_column!r} must be True or False; rows {preview(not_bool)} hold "
                         f"{preview(flags.loc[not_bool].tolist())}")
    data = pd.DataFrame({"item": df["item"], "audio_s": end - start, "checked": flags.astype(bool)})
    data["checked_s"] = data["audio_s"].where(data["checked"], 0.0)
    has_work = work_column is not None and work_column in df.columns
    if has_work:
        work = pd.to_numeric(df[work_column], errors="coerce").fillna(0.0)
        negative = df.index[work < 0]
        if len(negative):
            raise ValueError(f"{work_column!r} must be seconds of work (>= 0); rows {preview(negative)} are negative")
        data["human_s"] = work
    grouped = data.groupby("item", sort=False)
    out = pd.DataFrame({"audio_s": grouped["audio_s"].sum(), "segments": grouped.size(),
                        "checked_segments": grouped["checked"].sum().astype(int),
                        "checked_s": grouped["checked_s"].sum()})
    empty = out.index[out["audio_s"] <= 0]
    if len(empty):
        raise ValueError(f"file(s) {preview(empty)} have no audio (their segments add up to 0 s)")
    out["checked_share"] = out["checked_s"] / out["audio_s"]
    if has_work:
        out["human_s"] = grouped["human_s"].sum()
        out["human_s_per_audio_min"] = out["human_s"] / (out["audio_s"] / 60.0)
    out.index.name = "item"
    return out

"""An `ImageFilter` as one SQL WHERE clause over an index's `img` table (services/project_index.py:
a project's Explore index and the registry's), in its two forms: counting and paging."""
from __future__ import annotations

from chalicelib.services.filters import ImageFilter


def marks(n: int) -> str:
    return ",".join("?" * n)


# How an image's tags, tasks, jobs and splits are tested, in the two forms of a clause. Counting
# (and reading a whole selection) tests each row against lists built once per query from the
# other tables (`IN (SELECT …)`, which SQLite also uses to drive the search); paging walks the
# Explore-order index and probes the other tables for each row it meets (`EXISTS`), stopping at
# the page's end — building the lists would cost more than the page.
_TESTS = {
    "tag": ("slot IN (SELECT slot FROM tag WHERE tag IN (SELECT tag FROM tag_name WHERE tag_id {}))",
            "EXISTS (SELECT 1 FROM tag WHERE tag.slot = img.slot AND tag.tag IN "
            "(SELECT tag FROM tag_name WHERE tag_id {}))"),
    "task": ("slot IN (SELECT place.slot FROM job CROSS JOIN place ON place.job = job.job WHERE job.task_id {})",
             "EXISTS (SELECT 1 FROM place JOIN job USING (job) WHERE place.slot = img.slot AND job.task_id {})"),
    "job": ("slot IN (SELECT place.slot FROM job CROSS JOIN place ON place.job = job.job WHERE job.job_id {})",
            "EXISTS (SELECT 1 FROM place JOIN job USING (job) WHERE place.slot = img.slot AND job.job_id {})"),
    "split": ("slot IN (SELECT place.slot FROM task CROSS JOIN job ON job.task_id = task.task_id "
              "CROSS JOIN place ON place.job = job.job WHERE task.split {})",
              "EXISTS (SELECT 1 FROM place JOIN job USING (job) JOIN task USING (task_id) "
              "WHERE place.slot = img.slot AND task.split {})"),
    "in_a_split": ("slot IN (SELECT place.slot FROM task CROSS JOIN job ON job.task_id = task.task_id "
                   "CROSS JOIN place ON place.job = job.job WHERE task.split != 'none')",
                   "EXISTS (SELECT 1 FROM place JOIN job USING (job) JOIN task USING (task_id) "
                   "WHERE place.slot = img.slot AND task.split != 'none')"),
}


def _predicted(f: ImageFilter, form: int, params: list) -> str:
    """The prediction conditions as one test: a prediction (or, with a model alone, a completed
    analysis) of the image that meets them all."""
    table = "pred" if f.predicts() else "analysis"
    tests: list[str] = []
    if f.prediction_model is not None:
        if f.prediction_model_version is not None:
            tests.append("model IN (SELECT model FROM model WHERE name = ? AND version = ?)")
            params += [f.prediction_model, f.prediction_model_version]
        else:
            tests.append("model IN (SELECT model FROM model WHERE name = ?)")
            params.append(f.prediction_model)
    if f.predicted_class is not None:
        tests.append("cls IN (SELECT cls FROM class_name WHERE name = ?)")
        params.append(f.predicted_class)
    if f.min_confidence is not None:
        tests.append("confidence >= ?")
        params.append(f.min_confidence)
    if f.confidence_below is not None:
        tests.append("confidence < ?")
        params.append(f.confidence_below)
    if form:
        return f"EXISTS (SELECT 1 FROM {table} WHERE {table}.slot = img.slot AND {' AND '.join(tests)})"
    return f"slot IN (SELECT slot FROM {table} WHERE {' AND '.join(tests)})"


def following(prefix: str) -> str | None:
    """The least string after every string that starts with `prefix` (text compares as UTF-8 bytes,
    that is by code point), or None when its last character has no successor to encode."""
    last = ord(prefix[-1])
    if last in (0xD7FF, 0x10FFFF):
        return None
    return prefix[:-1] + chr(last + 1)


def where(f: ImageFilter, paging: bool = False, hidden: tuple[str, ...] = ()) -> tuple[str, list]:
    """The filter as a WHERE clause over `img` and its parameters; the same rules as PoolQuery's.
    `paging`: the form for walking Explore order to the end of a page (see `_TESTS`); `hidden`:
    path prefixes left out (deleted datasets, services/trash.py), each a range of the path index."""
    form = int(paging)
    conditions: list[str] = []
    params: list = []
    for prefix in hidden:
        conditions.append("NOT (file_path >= ? AND file_path < ?)")
        params += [prefix, following(prefix)]

    def test(kind: str, values: list) -> str:
        params.extend(values)
        return _TESTS[kind][form].format("= ?" if len(values) == 1 else f"IN ({marks(len(values))})")

    if f.search:
        conditions.append("instr(name_folded, ?) > 0")
        params.append(f.search.casefold())
    if f.path_prefix:
        conditions.append("substr(file_path, 1, ?) = ?")
        params += [len(f.path_prefix), f.path_prefix]
        after = following(f.path_prefix)
        if after is not None:  # the same paths as a range of the path index
            conditions.append("file_path >= ? AND file_path < ?")
            params += [f.path_prefix, after]
    for column, low, high in (("width", f.min_width, f.max_width), ("height", f.min_height, f.max_height),
                              ("size", f.min_file_size, f.max_file_size)):
        if low is not None:
            conditions.append(f"{column} >= ?")
            params.append(low)
        if high is not None:
            conditions.append(f"{column} <= ?")
            params.append(high)

    def tagged(tags: list[str], mode: str) -> str:
        if mode == "all":
            return " AND ".join(test("tag", [tag]) for tag in tags)
        return test("tag", tags)

    if f.tag_ids:
        conditions.append(f"({tagged(f.tag_ids, f.tag_mode)})")
    if f.exclude_tag_ids:
        conditions.append(f"NOT ({tagged(f.exclude_tag_ids, f.exclude_mode)})")
    if f.task_id:
        conditions.append(test("task", f.task_id))
    if f.job_id:
        conditions.append(test("job", [f.job_id]))
    if f.caption:
        conditions.append("instr(caption_folded, ?) > 0")
        params.append(f.caption.casefold())
    if f.has_caption is not None:
        conditions.append("caption_folded IS NOT NULL" if f.has_caption else "caption_folded IS NULL")
    if f.prediction_model is not None or f.predicts():
        conditions.append(_predicted(f, form, params))
    if f.is_annotated is not None:
        conditions.append("annotation_count > 0" if f.is_annotated else "annotation_count = 0")
    if f.split == "none":  # in no split: no task of the image has one
        conditions.append(f"NOT {_TESTS['in_a_split'][form]}")
    elif f.split is not None:
        conditions.append(test("split", [f.split]))
    return (" AND ".join(conditions) or "1"), params

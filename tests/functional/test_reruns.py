"""Every Task step of every state machine fails once, and the work still converges (issue 12's net).

For each Task state of `infra/statemachines/*.asl.json` the step runs to the end and then its
invocation fails (its answer lost, as on a Lambda timeout or a service error on the way back:
a failure injected at the emulator's Lambda dispatch). The machine's `Retry` runs it again, and the
end state must equal that of a run without the failure: the same registry records and thumbnails,
the same operation result, the same export record and artifact bytes, the same execution output,
with nothing duplicated or left behind. Steps only reached through a `Catch` (the failure
reports) are exercised on the failure path, which a first step failing for good opens.

Adding a Task state to a machine adds a case here; adding a machine needs its scenario below.
"""
from __future__ import annotations

import io
import json
import re
import uuid
import zipfile
from dataclasses import dataclass
from typing import Any

import pytest

from tests import imagefiles
from tests.conftest import ROOT, Api, poll, wait_for
from tests.conftest import put_share_object as put

MACHINES = ROOT / "infra" / "statemachines"
PERMANENT = "InjectedPermanentError"  # in no Retry: the first step fails for good, the Catch path runs


@dataclass(frozen=True)
class Step:
    machine: str  # file stem
    state: str
    function: str  # the template's function resource name (`${PrepareExportArn}` → PrepareExport)
    first: str  # the machine's first Task's function
    on_catch_path: bool

    def __str__(self) -> str:
        return f"{self.machine}-{self.state}"


def _tasks(states: dict[str, Any]) -> list[tuple[str, dict]]:
    found = []
    for name, state in states.items():
        if state["Type"] == "Task":
            found.append((name, state))
        elif state["Type"] == "Map":
            found += _tasks((state.get("ItemProcessor") or state["Iterator"])["States"])
        elif state["Type"] == "Parallel":
            for branch in state["Branches"]:
                found += _tasks(branch["States"])
    return found


def _catch_targets(states: dict[str, Any]) -> set[str]:
    return {catch["Next"] for state in states.values() for catch in state.get("Catch", [])}


def _first_task(states: dict[str, Any], name: str) -> str:
    """The first Task a run meets from `name` (a Choice's default branch)."""
    while states[name]["Type"] == "Choice":
        name = states[name]["Default"]
    return name


def steps() -> list[Step]:
    found = []
    for path in sorted(MACHINES.glob("*.asl.json")):
        definition = json.loads(path.read_text())
        tasks = _tasks(definition["States"])
        function = {name: state["Resource"].removeprefix("${").removesuffix("Arn}") for name, state in tasks}
        first = function[_first_task(definition["States"], definition["StartAt"])]
        catch_only = _catch_targets(definition["States"])
        for name, _ in tasks:
            step = Step(path.name.removesuffix(".asl.json"), name, function[name], first, name in catch_only)
            found.append(pytest.param(step, id=str(step)))
    return found


# Scenarios: each builds its inputs, runs the work once and returns the end state ----------------


def _images_state(stack) -> dict:
    """The registry and its thumbnails, without the times that differ between two runs."""
    volatile = {"created_at", "updated_at", "last_modified", "object_time", "object_modified_at", "sequencer", "indexed_at",
                "registered_at", "seen_at"}
    items = stack.aws("dynamodb").scan(TableName=stack.variables["PIXELPOOL_IMAGES_TABLE"])["Items"]
    records = sorted(({k: v for k, v in item.items() if k not in volatile} for item in items),
                     key=lambda item: item["id"]["S"])
    cache = stack.aws("s3").list_objects_v2(Bucket=stack.variables["PIXELPOOL_CACHE_BUCKET"]).get("Contents", [])
    return {"images": records, "cache": sorted((o["Key"], o["Size"]) for o in cache if "thumb" in o["Key"])}


class IndexScenario:
    """Reindex a prefix holding a registered image, a vanished one, a new one and a broken one.
    A reindex changes what it walks, so each run gets a world of its own."""

    fresh_world = True

    def __init__(self, stack, client) -> None:
        self.stack = stack
        self.admin = Api(client, stack.token(sub="root", groups=["admin"]))
        for n, key in enumerate(("idx/kept.jpg", "idx/gone.jpg")):
            put(stack, key, imagefiles.picture(40, 30, seed=n))
        assert self.admin.post("/api/v1/shared-images/register",
                               {"file_paths": ["idx/kept.jpg", "idx/gone.jpg"]}).status_code == 200
        stack.aws("s3").delete_object(Bucket=stack.variables["PIXELPOOL_SHARE_BUCKET"], Key="idx/gone.jpg")
        put(stack, "idx/new.png", imagefiles.picture(30, 20, seed=7, fmt="PNG"))
        put(stack, "idx/broken.jpg", b"not an image")

    def run(self) -> dict:
        started = self.admin.post("/api/v1/admin/reindex", {"prefix": "idx/"})
        assert started.status_code == 202, started.json
        operation = wait_for(self.admin, started.json["data"]["id"])
        outcome = {key: operation.get(key) for key in ("status", "error", "done", "total", "progress")}
        return {"operation": outcome, "result": _without_ids(operation.get("result")), **_images_state(self.stack)}


def _without_ids(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_ids(v) for k, v in value.items() if k not in ("operation_id", "id", "result_url")}
    if isinstance(value, list):
        return [_without_ids(v) for v in value]
    return value


class ExportScenario:
    """Detection exports with images of the small hand-checked project of test_exports. Exports only
    read the project, so both runs use one project; an export's own id, number, name and times
    are left out of the comparison."""

    def __init__(self, stack, client) -> None:
        from tests.functional.test_exports import Small

        self.stack = stack
        self.api = Api(client, stack.token(sub="alice", groups=[]))
        self.small = Small(stack, self.api)

    def run(self) -> dict:
        from tests.functional.test_exports import finished

        api, base, stack = self.api, self.small.base, self.stack
        created = api.post(f"{base}/exports", {"export_mode": "detection", "options": {"include_images": True}})
        assert created.status_code == 202, created.json
        export = finished(api, base, created.json["data"]["id"])
        record = {key: export.get(key) for key in ("status", "error", "summary", "progress")}
        bucket = stack.variables["PIXELPOOL_EXPORTS_BUCKET"]
        prefix = f"exports/{self.small.project}/{export['id']}/"
        # The record says completed (or failed) just before the step clears the work files: wait for
        # that; work files left for good fail the test here.
        objects = poll(lambda: [o["Key"] for o in stack.aws("s3").list_objects_v2(
                           Bucket=bucket, Prefix=prefix).get("Contents", [])],
                       lambda keys: not any("/work/" in key for key in keys), "the export's work files to go", 30)
        artifact = {}
        if export["status"] == "completed":
            (key,) = objects  # the artifact and nothing else: no shard parts, no second copy
            body = stack.aws("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
            with zipfile.ZipFile(io.BytesIO(body)) as archive:
                artifact = {name: _member(archive.read(name)) for name in sorted(archive.namelist())}
        else:
            assert objects == []
        return {"record": record, "artifact": artifact}


def _member(data: bytes) -> Any:
    """A ZIP member's contents; in JSON documents, the export's creation time is left out."""
    try:
        document = json.loads(data)
    except ValueError:
        return data
    return _without_identity(document)


def _without_identity(value: Any) -> Any:
    """`value` without what names one export or one moment (its id, number, name, times)."""
    own = {"id", "export_id", "version", "version_number", "name", "created_at", "started_at", "completed_at",
           "date_created", "year", "created_by"}
    if isinstance(value, dict):
        return {k: _without_identity(v) for k, v in value.items()
                if k not in own or isinstance(v, (int, float)) and k == "id"}
    if isinstance(value, list):
        return [_without_identity(v) for v in value]
    return value


class SelfcheckScenario:
    """The self-check of the whole stack; its end state is the execution's outcome."""

    def __init__(self, stack, client) -> None:
        self.stack = stack

    def run(self) -> dict:
        sfn = self.stack.aws("stepfunctions")
        arn = self.stack.variables["PIXELPOOL_SELFCHECK_STATE_MACHINE"]
        execution = sfn.start_execution(stateMachineArn=arn, name=f"rerun-{uuid.uuid4().hex}",
                                        input="{}")["executionArn"]
        described = poll(lambda: sfn.describe_execution(executionArn=execution),
                         lambda d: d["status"] != "RUNNING", "selfcheck", 60, interval=0.05)
        return {key: described.get(key) for key in ("status", "output", "error", "cause")}


class ImportScenario:
    """A dataset import of a ZIP with nested folders, a README and a COCO file (boxes and a polygon).
    Ids and keys name the dataset, which each run makes anew: the state is read relative to its prefix."""

    fresh_world = True

    def __init__(self, stack, client) -> None:
        from tests.functional.test_dataset_import import coco, make_zip

        self.stack = stack
        self.api = Api(client, stack.token(sub="alice", groups=[]))
        files = [("a/x.jpg", 60, 40), ("a/b/y.png", 50, 30)]
        self.body = make_zip({
            "a/x.jpg": imagefiles.picture(60, 40, seed=1), "a/b/y.png": imagefiles.picture(50, 30, seed=2, fmt="PNG"),
            "notes.txt": b"notes", "coco.json": coco(files, [(1, 1, [1, 1, 10, 10]), (2, 2, [0, 0, 5, 5])],
                                                     segmentation={2: [[0, 0, 5, 0, 5, 5]]})})

    def run(self) -> dict:
        from tests.functional.test_dataset_import import job_annotations, upload

        api = self.api
        dataset = api.post("/api/v1/datasets", {"name": "rerun"}).json["data"]["id"]
        upload(api, dataset, "data.zip", self.body)
        started = api.post(f"/api/v1/datasets/{dataset}/import", {"chunk_size": 1})
        assert started.status_code == 202, started.json
        operation = wait_for(self.api, started.json["data"]["id"], timeout=120)
        prefix = f"datasets/{dataset}/"
        detail = api.get(f"/api/v1/datasets/{dataset}").json["data"]
        records = {image["file_path"].removeprefix(prefix): (image["status"], image.get("size"), image["width"], image["height"])
                   for image in api.get(f"/api/v1/shared-images?folder=datasets/{dataset}&page_size=100").json["data"]}
        stored = {}
        if detail["project_id"]:
            stored = {path.removeprefix(prefix): sorted(json.dumps(
                {k: v for k, v in shape.items() if k != "id"}, sort_keys=True) for shape in shapes)
                for path, shapes in job_annotations(api, detail["project_id"]).items()}
        share = sorted(key.removeprefix(prefix) for key in (o["Key"] for o in self.stack.aws("s3").list_objects_v2(
            Bucket=self.stack.variables["PIXELPOOL_SHARE_BUCKET"], Prefix=prefix).get("Contents", [])))
        outcome = {key: operation.get(key) for key in ("status", "done", "total", "progress")}
        history = [{k: v for k, v in entry.items() if k in ("status", "images", "annotations", "problems")}
                   for entry in detail["imports"]]
        return {"operation": outcome, "error": (operation.get("error") or "").replace(dataset, "<dataset>"),
                "result": _without_ids({k: v for k, v in (operation.get("result") or {}).items()
                                        if k not in ("project_id", "task_ids")}),
                "dataset": {k: detail[k] for k in ("status", "image_count", "annotation_count", "storage")},
                "folders": detail["folders"], "history": history, "records": records, "annotations": stored,
                "share": share}


class DeletionScenario:
    """A dataset imported and used by a second project (pool, task, an annotation, a frozen version,
    a tag), deleted with a backup and purged at once. The end state: the operation's summary, the
    dataset's state and audit actions, what is left of the dataset anywhere (nothing) and of the
    second project (its own image, untouched), and the backup's member list."""

    fresh_world = True

    def __init__(self, stack, client) -> None:
        self.stack = stack
        self.client = client

    def run(self) -> dict:
        from tests.functional.test_dataset_deletion import dataset_items, deleted, explore, world_of

        world = world_of(self.stack, Api(self.client, self.stack.token(sub="alice", groups=[])))
        api = Api(self.client, self.stack.token(sub="alice", groups=[]))
        operation = deleted(api, world.dataset, "street", create_backup=True, purge=True, require=False)
        detail = api.get(f"/api/v1/datasets/{world.dataset}").json["data"]
        backup = None
        if detail["deletion"] and detail["deletion"].get("backup_key"):
            body = self.stack.aws("s3").get_object(Bucket=self.stack.variables["PIXELPOOL_DATASETS_BUCKET"],
                                                   Key=detail["deletion"]["backup_key"])["Body"].read()
            names = zipfile.ZipFile(io.BytesIO(body)).namelist()  # ids of projects, tasks and jobs are each run's
            backup = sorted(re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<id>", name)
                            for name in names)
        summary = (operation.get("result") or {}).get("deletion_summary") or {}
        return {"status": operation["status"], "error": operation.get("error"),
                "summary": {k: v for k, v in summary.items() if not k.startswith("s3_keys")},
                "state": detail["state"], "backup": backup,
                "audit": [e["action"] for e in api.get(f"/api/v1/datasets/{world.dataset}/audit").json["data"]],
                "left": dataset_items(self.stack, world), "mixed": explore(api, world.other) == [world.outside],
                "kept": len(explore(api, world.kept_project))}


SCENARIOS: dict[str, type] = {"index": IndexScenario, "export": ExportScenario, "selfcheck": SelfcheckScenario,
                              "import": ImportScenario, "delete-dataset": DeletionScenario}


def run(stack, scenario, step: Step, *, fail_step: bool) -> tuple[dict, list]:
    """Run the scenario's work once; its end state and the faults that fired."""
    lambdas = stack.emulator.lambdas
    faults = []
    if step.on_catch_path:
        faults.append(lambdas.fail(step.first, PERMANENT, after_running=False))
    if fail_step:
        faults.append(lambdas.fail(step.function))
    try:
        return scenario.run(), faults
    finally:
        lambdas.clear_faults()


def test_every_machine_has_a_scenario():
    assert {param.values[0].machine for param in steps()} == set(SCENARIOS)


@pytest.mark.parametrize("step", steps())
def test_a_step_that_fails_once_converges_to_the_unfailed_end_state(stack, client, step):
    # Given the end state of a run in which nothing failed (but the first step, for the Catch path)
    make = SCENARIOS[step.machine]
    scenario = make(stack, client)
    expected, _ = run(stack, scenario, step, fail_step=False)
    if getattr(make, "fresh_world", False):
        stack.reset()
        scenario = make(stack, client)
    # When the same work runs again and this step fails once, after doing all its work
    observed, faults = run(stack, scenario, step, fail_step=True)
    # Then the failure happened, was retried, and the end state is the same
    assert all(fault.fired == 1 for fault in faults), faults
    assert differences(observed, expected) == []


def differences(observed: Any, expected: Any, path: str = "") -> list[str]:
    """Where two end states differ, as `path: observed != expected` lines."""
    if isinstance(observed, dict) and isinstance(expected, dict):
        return [line for key in sorted(set(observed) | set(expected), key=str)
                for line in differences(observed.get(key), expected.get(key), f"{path}/{key}")]
    if isinstance(observed, list) and isinstance(expected, list) and len(observed) == len(expected):
        return [line for n, (a, b) in enumerate(zip(observed, expected)) for line in differences(a, b, f"{path}[{n}]")]
    return [] if observed == expected else [f"{path}: {observed!r:.200} != {expected!r:.200}"]

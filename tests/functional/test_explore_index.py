"""Explore's index against the source of truth: random sequences of writes, and after every step
the index (one instance warmed before the writes, as another API process holds it, and one built
fresh), PoolQuery (DynamoDB, no index) and an in-memory oracle agree on random filters — the
selection, its order and its total. Then read-your-writes for each kind of write, one by one.
"""
from __future__ import annotations

import itertools
import time
from datetime import datetime

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from chalicelib.services.container import services
from chalicelib.services.filters import ImageFilter
from tests.conftest import ROOT, Api
from tests.functional.test_analyses import Pipeline, enable
from tests.imagefiles import picture

IMAGES = "/api/v1/shared-images"
KEYS = [f"{folder}{stem}_{n:02d}.jpg" for n, (folder, stem) in
        enumerate(itertools.islice(itertools.cycle([("ix/a/", "Cat"), ("ix/b/", "dog"), ("ix/", "Sky")]), 12))]
LABELS = [{"name": "cat", "annotation_type": "bbox"}]
BOX = {"type": "bbox", "label": "cat", "state": "confirmed", "bbox": [1, 1, 8, 8]}
SPLITS = ("none", "train", "val", "test")
CAPTIONS = ("A cat on a mat", "dog and CAT", "open sky")
MODELS = (("yolo_v8", "1"), ("yolo_v8", "2"), ("resnet50_classifier", "1"))
PREDICTION_KEYS = ("predicted_class", "min_confidence", "confidence_below")
_counter = itertools.count()


class FreshPipeline(Pipeline):
    """Signs with the current second: every request of the machine differs from the others (ids or
    a run number in the body), so none is a replay, and hundreds of them never drift ahead."""

    def headers(self, method, path, body, timestamp=None, extra=None):
        return super().headers(method, path, body, timestamp or int(time.time()), extra)


def new_index():
    """An `IndexedExplore` of its own, as a second API process has."""
    from chalicelib.services.explore_index import IndexedExplore
    from chalicelib.store.changes import ChangeLog
    from chalicelib.store.images import ImageRepository
    from chalicelib.store.jobs import JobRepository
    from chalicelib.store.pool import PoolRepository
    from chalicelib.store.tasks import TaskRepository

    return IndexedExplore(PoolRepository(), TaskRepository(), JobRepository(), ImageRepository(), ChangeLog())


def ids_of(selection) -> tuple[list[str], int]:
    return [entry.image_id for entry in selection.entries], selection.total


@pytest.fixture(scope="module")
def registry(local_stack):
    """Twelve registered images and a client; each example makes its own projects and tags."""
    from chalice.test import Client

    local_stack.reset()
    s3, bucket = local_stack.aws("s3"), local_stack.variables["PIXELPOOL_SHARE_BUCKET"]
    for n, key in enumerate(KEYS):
        s3.put_object(Bucket=bucket, Key=key, Body=picture(16 + 8 * (n % 5), 16 + 4 * (n % 3), seed=n))
    with Client(local_stack.app, stage_name="dev", project_dir=str(ROOT)) as client:
        api = Api(client, local_stack.token(sub="alice", email="alice@example.com", groups=[]))
        registered = api.post(f"{IMAGES}/register", {"file_paths": KEYS}).json["data"]["registered"]
        yield local_stack, api, {image["file_path"]: image["id"] for image in registered}, FreshPipeline(client)


class ExploreWrites(RuleBasedStateMachine):
    """Writes through the API; the oracle is what those writes said."""

    stack = api = by_key = pipeline = None  # set by the test
    completed: list[tuple[str, str, str, list[tuple[str, float]]]] = []  # analyses, across runs

    @initialize()
    def start(self):
        run = next(_counter)
        self.project = self.api.post("/api/v1/projects", {"name": f"ix-{run}", "labels": LABELS}).json["data"]["id"]
        self.tags = [self.api.post("/api/v1/tags", {"name": f"ix-{run}-{n}"}).json["data"]["id"] for n in range(2)]
        self.ids = sorted(self.by_key.values())
        self.facts = {image: self._facts(image) for image in self.ids}
        self.pool: set[str] = set()
        self.tagged: dict[str, set[str]] = {tag: set() for tag in self.tags}
        self.tasks: dict[str, dict] = {}  # task id → {"split", "jobs": {job id: [image ids]}}
        self.annotated: set[tuple[str, str]] = set()
        # Captions and completed analyses belong to the images, which every run shares: what
        # earlier runs left is where this one starts.
        self.captions: dict[str, str] = {image: self.facts[image]["caption"] for image in self.ids
                                         if self.facts[image]["caption"] is not None}
        self.analyses = self.completed
        enable(self.stack)
        self.warm = new_index()
        self.warm.select(self.project, ImageFilter())  # built before any write of this run

    def _facts(self, image_id: str) -> dict:
        data = self.api.get(f"{IMAGES}/{image_id}").json["data"]
        return {"caption": (data["caption"] or {}).get("text"), "file_path": data["file_path"], "width": data["width"], "height": data["height"], "status": data["status"],
                "created": -datetime.fromisoformat(data["created_at"]).timestamp()}

    # Writes -----------------------------------------------------------------------------------------

    @rule(data=st.data())
    def tag(self, data):
        tag = data.draw(st.sampled_from(self.tags))
        chosen = data.draw(st.lists(st.sampled_from(self.ids), min_size=1, max_size=5, unique=True))
        assert self.api.post(f"{IMAGES}/bulk-tag", {"shared_image_ids": chosen, "tag_ids": [tag]}).status_code == 200
        self.tagged[tag] |= set(chosen)

    @rule(data=st.data())
    def untag(self, data):
        tag = data.draw(st.sampled_from(self.tags))
        chosen = data.draw(st.lists(st.sampled_from(self.ids), min_size=1, max_size=5, unique=True))
        assert self.api.post(f"{IMAGES}/bulk-untag", {"shared_image_ids": chosen, "tag_ids": [tag]}).status_code == 200
        self.tagged[tag] -= set(chosen)

    @rule(data=st.data())
    def add_to_pool(self, data):
        chosen = data.draw(st.lists(st.sampled_from(self.ids), min_size=1, max_size=6, unique=True))
        added = self.api.post(f"/api/v1/projects/{self.project}/images", {"shared_image_ids": chosen})
        assert added.status_code == 200
        # an image whose object is gone (`missing`) is not added; one already in the pool stays
        not_ready = {image for image in chosen if self.facts[image]["status"] != "ready"}
        assert set(added.json["data"]["not_ready"]) == not_ready
        self.pool |= set(chosen) - not_ready

    def _free(self) -> list[str]:
        used = {image for task in self.tasks.values() for images in task["jobs"].values() for image in images}
        return sorted(self.pool - used)

    @precondition(lambda self: self._free())
    @rule(data=st.data())
    def remove_from_pool(self, data):
        image = data.draw(st.sampled_from(self._free()))
        assert self.api.delete(f"/api/v1/projects/{self.project}/images/{image}").status_code == 200
        self.pool.discard(image)

    @rule(data=st.data())
    def create_task(self, data):
        chosen = data.draw(st.lists(st.sampled_from(self.ids), min_size=1, max_size=5, unique=True))
        split = data.draw(st.sampled_from(SPLITS))
        keys = [self.facts[image]["file_path"] for image in chosen]  # paths: the task adds them to the pool
        created = self.api.post(f"/api/v1/projects/{self.project}/tasks/create-with-file-paths", {
            "name": f"t{len(self.tasks)}", "chunk_size": 2, "distribution_order": "sequential", "split": split,
            "file_paths": keys})
        # An object deleted earlier (its record `missing`) cannot go into a task: it is reported failed.
        if created.status_code == 422:
            assert all(self.facts[image]["status"] == "missing" for image in chosen), created.json
            return
        assert created.status_code == 201, created.json
        failed = {entry["file_path"] for entry in created.json["data"]["failed"]}
        assert failed == {self.facts[image]["file_path"] for image in chosen if self.facts[image]["status"] == "missing"}
        chosen = [image for image in chosen if self.facts[image]["file_path"] not in failed]
        jobs = {job["id"]: chosen[job["sequence_number"] * 2:(job["sequence_number"] + 1) * 2]
                for job in created.json["data"]["jobs"]}
        self.tasks[created.json["data"]["task"]["id"]] = {"split": split, "jobs": jobs}
        self.pool |= set(chosen)

    @precondition(lambda self: self.tasks)
    @rule(data=st.data())
    def delete_task(self, data):
        task = data.draw(st.sampled_from(sorted(self.tasks)))
        assert self.api.delete(f"/api/v1/projects/{self.project}/tasks/{task}").status_code == 200
        for job, images in self.tasks.pop(task)["jobs"].items():
            self.annotated -= {(job, image) for image in images}

    @precondition(lambda self: self.tasks)
    @rule(data=st.data())
    def change_split(self, data):
        task = data.draw(st.sampled_from(sorted(self.tasks)))
        split = data.draw(st.sampled_from(SPLITS))
        assert self.api.patch(f"/api/v1/projects/{self.project}/tasks/{task}", {"split": split}).status_code == 200
        self.tasks[task]["split"] = split

    @precondition(lambda self: self.tasks)
    @rule(data=st.data(), keep=st.booleans())
    def annotate(self, data, keep):
        task = self.tasks[data.draw(st.sampled_from(sorted(self.tasks)))]
        job = data.draw(st.sampled_from(sorted(task["jobs"])))
        image = data.draw(st.sampled_from(task["jobs"][job]))
        body = {"annotations": [BOX] if keep else []}
        saved = self.api.request("PUT", f"/api/v1/jobs/{job}/images/{image}/annotations", body)
        assert saved.status_code == 200, saved.json
        (self.annotated.add if keep else self.annotated.discard)((job, image))

    @rule(data=st.data())
    def caption(self, data):
        image = data.draw(st.sampled_from(self.ids))
        text = data.draw(st.sampled_from((*CAPTIONS, None)))
        if text is None:
            assert self.api.delete(f"{IMAGES}/{image}/caption").status_code == 200
            self.captions.pop(image, None)
        else:
            assert self.api.request("PUT", f"{IMAGES}/{image}/caption", {"text": text}).status_code == 200
            self.captions[image] = text

    @precondition(lambda self: any(self.facts[image]["status"] == "ready" for image in self.ids))
    @rule(data=st.data())
    def analyze(self, data):
        """A pipeline analyses an image: only an analysis that completes counts in Explore."""
        image = data.draw(st.sampled_from([image for image in self.ids if self.facts[image]["status"] == "ready"]))
        model, version = data.draw(st.sampled_from(MODELS))
        predicted = data.draw(st.lists(st.tuples(st.sampled_from(["cat", "dog"]),
                                                 st.sampled_from([0.1, 0.3, 0.5, 0.7, 0.9])), max_size=3))
        finish = data.draw(st.sampled_from(["completed", "completed", "failed", None]))
        made = self.pipeline.post(f"/api/v1/images/{image}/analyses", {
            "model_name": model, "model_version": version, "parameters": {"run": next(_counter)}})
        assert made.status_code == 201, made.json
        a = f"/api/v1/analyses/{made.json['data']['id']}"
        assert self.pipeline.patch(f"{a}/status", {"status": "processing"}).status_code == 200
        if predicted:
            items = [{"annotation_type": "classification", "class_name": name, "confidence": confidence}
                     for name, confidence in predicted]
            assert self.pipeline.post(f"{a}/annotations:bulk", {"annotations": items}).status_code == 200
        if finish:
            assert self.pipeline.post(f"{a}/finalize", {"status": finish}).status_code == 200
        if finish == "completed":
            self.analyses.append((image, model, version, predicted))

    @rule(data=st.data(), gone=st.booleans())
    def change_the_object(self, data, gone):
        """The object is replaced by a picture of another size, or deleted (the record goes missing)."""
        key = data.draw(st.sampled_from(sorted(self.by_key)))
        s3, bucket = self.stack.aws("s3"), self.stack.variables["PIXELPOOL_SHARE_BUCKET"]
        if gone:
            s3.delete_object(Bucket=bucket, Key=key)
        else:
            size = data.draw(st.sampled_from([(20, 30), (40, 12), (64, 64)]))
            s3.put_object(Bucket=bucket, Key=key, Body=picture(*size, seed=next(_counter)))
        self.stack.pump.drain()
        self.facts[self.by_key[key]] = self._facts(self.by_key[key])

    # The check ---------------------------------------------------------------------------------------

    def expected(self, f: dict) -> list[str]:
        def placed(image):
            return [(task_id, task["split"], job, (job, image) in self.annotated)
                    for task_id, task in self.tasks.items() for job, images in task["jobs"].items() if image in images]

        def predicted(image):
            for analysed, model, version, predictions in self.analyses:
                if analysed != image or f.get("prediction_model", model) != model or (
                        f.get("prediction_model_version", version) != version):
                    continue
                if not any(key in f for key in PREDICTION_KEYS):
                    return True
                if any(f.get("predicted_class", name) == name and f.get("min_confidence", 0) <= confidence
                       < f.get("confidence_below", 2) for name, confidence in predictions):
                    return True
            return False

        def keep(image):
            facts, places, caption = self.facts[image], placed(image), self.captions.get(image)
            has = [image in self.tagged[tag] for tag in f.get("tag_ids", [])]
            excluded = [image in self.tagged[tag] for tag in f.get("exclude_tag_ids", [])]
            return all([
                f.get("search", "").casefold() in facts["file_path"].rsplit("/", 1)[-1].casefold(),
                not has or (all(has) if f.get("tag_mode") == "all" else any(has)),
                not excluded or not (all(excluded) if f.get("exclude_mode") == "all" else any(excluded)),
                not f.get("task_id") or any(p[0] in f["task_id"] for p in places),
                "job_id" not in f or any(p[2] == f["job_id"] for p in places),
                "is_annotated" not in f or any(p[3] for p in places) == f["is_annotated"],
                "split" not in f or f["split"] in ({p[1] for p in places} - {"none"} or {"none"}),
                f.get("min_width", 0) <= facts["width"] <= f.get("max_width", 10**9),
                facts["file_path"].startswith(f.get("path_prefix", "")),
                "caption" not in f or (caption is not None and f["caption"].casefold() in caption.casefold()),
                "has_caption" not in f or (caption is not None) == f["has_caption"],
                not any(key in f for key in ("prediction_model", *PREDICTION_KEYS)) or predicted(image),
            ])

        return sorted((image for image in self.pool if keep(image)), key=lambda i: (self.facts[i]["created"], i))

    @invariant()
    def every_index_agrees_with_the_source_and_the_oracle(self):
        fresh = new_index()
        jobs = sorted(job for task in self.tasks.values() for job in task["jobs"])
        filters = [{}, {"tag_ids": self.tags, "tag_mode": "all"}, {"tag_ids": self.tags},
                   {"exclude_tag_ids": self.tags[:1], "is_annotated": False}, {"min_width": 30, "path_prefix": "ix/a/"},
                   {"search": "DOG"}, *({"split": split} for split in SPLITS), {"is_annotated": True},
                   {"caption": "cat"}, {"has_caption": False, "search": "cat"}, {"prediction_model": "yolo_v8"},
                   {"prediction_model": "yolo_v8", "prediction_model_version": "2"},
                   {"prediction_model": "yolo_v8", "predicted_class": "cat", "confidence_below": 0.5},
                   {"min_confidence": 0.7}, {"predicted_class": "dog", "min_confidence": 0.3, "confidence_below": 0.9,
                                             "prediction_model": "resnet50_classifier"}]
        if self.tasks:
            filters += [{"task_id": sorted(self.tasks)[:1]}, {"task_id": sorted(self.tasks)[-1:], "split": "train"}]
        if jobs:
            filters.append({"job_id": jobs[0]})
        for f in filters:
            image_filter = ImageFilter.model_validate(f)
            expected = self.expected(f)
            for name, index in (("warm", self.warm), ("fresh", fresh), ("service", services().explore_index),
                                ("PoolQuery", services().pool_query)):
                assert ids_of(index.select(self.project, image_filter)) == (expected, len(expected)), (name, f)


@pytest.fixture
def machine(registry):
    stack, api, by_key, pipeline = registry
    ExploreWrites.stack, ExploreWrites.api, ExploreWrites.by_key, ExploreWrites.pipeline = stack, api, by_key, pipeline
    ExploreWrites.completed = []
    yield ExploreWrites
    stack.pump.drain()


def test_random_writes_leave_every_index_equal_to_the_source_and_the_oracle(machine):
    from hypothesis.stateful import run_state_machine_as_test

    # No shrinking: each step is a few API calls, and a failure's steps are printed as they ran.
    run_state_machine_as_test(machine, settings=settings(
        max_examples=4, stateful_step_count=10, deadline=None, phases=[Phase.explicit, Phase.generate],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]))


# Snapshots, the compactor, rebuild -------------------------------------------------------------------

def _answers(index, project: str, tags: list[str]) -> list[tuple[list[str], int]]:
    filters = [{}, {"tag_ids": tags}, {"tag_ids": tags, "tag_mode": "all"}, {"exclude_tag_ids": tags},
               {"is_annotated": True}, {"split": "train"}, {"split": "none"}]
    return [ids_of(index.select(project, ImageFilter.model_validate(f))) for f in filters]


@pytest.fixture
def small_world(stack, api):
    """Six images, a project holding five, a train task over three with one annotated, two tags."""
    s3, bucket = stack.aws("s3"), stack.variables["PIXELPOOL_SHARE_BUCKET"]
    keys = KEYS[:6]
    for n, key in enumerate(keys):
        s3.put_object(Bucket=bucket, Key=key, Body=picture(16 + 8 * n, 16, seed=n))
    ids = [image["id"] for image in api.post(f"{IMAGES}/register", {"file_paths": keys}).json["data"]["registered"]]
    project = api.post("/api/v1/projects", {"name": "snap", "labels": LABELS}).json["data"]["id"]
    assert api.post(f"/api/v1/projects/{project}/images", {"shared_image_ids": ids[:5]}).status_code == 200
    tags = [api.post("/api/v1/tags", {"name": f"snap-{n}"}).json["data"]["id"] for n in range(2)]
    api.post(f"{IMAGES}/bulk-tag", {"shared_image_ids": ids[:3], "tag_ids": tags[:1]})
    api.post(f"{IMAGES}/bulk-tag", {"shared_image_ids": ids[2:5], "tag_ids": tags[1:]})
    task = api.post(f"/api/v1/projects/{project}/tasks", {"name": "t", "chunk_size": 3, "split": "train",
                                                         "shared_image_ids": ids[:3]}).json["data"]
    job = task["jobs"][0]["id"]
    assert api.request("PUT", f"/api/v1/jobs/{job}/images/{ids[0]}/annotations",
                       {"annotations": [BOX]}).status_code == 200
    return project, ids, tags


def _snapshot_exists(stack, project: str) -> bool:
    from chalicelib.services.kept_index import snapshot_key

    return services().cache_bucket.metadata(snapshot_key(project)) is not None


def test_a_cold_instance_starts_from_the_snapshot_and_applies_what_changed_after_it(stack, api, small_world):
    project, ids, tags = small_world
    # Given the API's index, built once from DynamoDB, which leaves a snapshot behind
    before = _answers(services().explore_index, project, tags)
    assert _snapshot_exists(stack, project)
    # When more is written through the API
    api.post(f"{IMAGES}/bulk-tag", {"shared_image_ids": [ids[4]], "tag_ids": tags[:1]})
    api.delete(f"/api/v1/projects/{project}/images/{ids[3]}")
    # Then a cold instance starts from that snapshot (not from DynamoDB) and answers with the change
    cold = new_index_with_snapshots()
    assert cold._load(project) is not None
    after = _answers(cold, project, tags)
    assert after != before
    assert after == _answers(services().pool_query, project, tags)


def new_index_with_snapshots():
    from chalicelib.services.explore_index import IndexedExplore
    from chalicelib.store.changes import ChangeLog
    from chalicelib.store.images import ImageRepository
    from chalicelib.store.jobs import JobRepository
    from chalicelib.store.pool import PoolRepository
    from chalicelib.store.tasks import TaskRepository

    return IndexedExplore(PoolRepository(), TaskRepository(), JobRepository(), ImageRepository(), ChangeLog(),
                          services().cache_bucket)


def test_losing_snapshots_and_change_records_changes_no_answer_and_rebuild_restores(stack, api, small_world):
    from chalicelib.services.kept_index import snapshot_key
    from chalicelib.store.changes import TAGS_STREAM, ChangeLog, project_stream

    project, ids, tags = small_world
    truth = _answers(services().pool_query, project, tags)
    assert _answers(services().explore_index, project, tags) == truth
    # Given the snapshot is lost: a cold instance builds from DynamoDB and answers the same
    services().cache_bucket.delete(snapshot_key(project))
    assert _answers(new_index_with_snapshots(), project, tags) == truth
    # Given every snapshot and every change record is gone
    services().cache_bucket.delete(snapshot_key(project))
    assert ChangeLog().clear(project_stream(project)) > 0 and ChangeLog().clear(TAGS_STREAM) > 0
    # When the index is rebuilt
    rebuilt = new_index_with_snapshots()
    rebuilt.rebuild(project)
    # Then it answers as before, and left a snapshot a cold instance answers the same from
    assert _answers(rebuilt, project, tags) == truth
    assert _snapshot_exists(stack, project)
    assert _answers(new_index_with_snapshots(), project, tags) == truth


def test_the_compactor_writes_the_snapshots_of_changed_projects_and_a_killed_run_changes_nothing(
        stack, api, small_world):
    project, ids, tags = small_world
    services().explore_index.current(project)  # the first build leaves a snapshot
    services().registry_index.index()  # and the registry's
    # Given nothing changed since: the compactor writes nothing
    assert stack.scheduler.run_all()["compact_explore_index"] == {"snapshots_written": 0}
    # Given writes (the pool, and tags: their global records are replayed, up to an hour of them),
    # and a compactor run killed before it wrote anything
    api.post(f"{IMAGES}/bulk-untag", {"shared_image_ids": ids[:2], "tag_ids": tags[:1]})
    assert api.delete(f"/api/v1/projects/{project}/images/{ids[4]}").status_code == 200
    stack.emulator.lambdas.fail("compact_explore_index", after_running=False)
    with pytest.raises(Exception):
        stack.scheduler.run_all()
    # Then a cold instance still answers with the write (old snapshot + the change log)
    truth = _answers(services().pool_query, project, tags)
    assert _answers(new_index_with_snapshots(), project, tags) == truth
    # When the compactor runs, it writes the changed project's snapshot, once
    assert stack.scheduler.run_all()["compact_explore_index"] == {"snapshots_written": 1}
    assert stack.scheduler.run_all()["compact_explore_index"] == {"snapshots_written": 0}
    # And a cold instance starting from it needs none of the records before it
    cold = new_index_with_snapshots()
    held = cold._load(project)
    assert held is not None and held.watermarks == held.saved
    assert _answers(cold, project, tags) == truth


def test_an_administrator_rebuilds_the_index_through_the_api(stack, api, admin_api, small_world):
    from chalicelib.services.kept_index import snapshot_key
    from chalicelib.store.changes import TAGS_STREAM, ChangeLog, project_stream
    from tests.conftest import wait_for

    project, ids, tags = small_world
    truth = _answers(services().pool_query, project, tags)
    # Given every snapshot and change record gone, and an API instance that never built this index
    services().cache_bucket.delete(snapshot_key(project))
    ChangeLog().clear(project_stream(project))
    ChangeLog().clear(TAGS_STREAM)
    services().explore_index.forget()
    # When a non-administrator asks for a rebuild, it is refused; an unknown project is 404
    assert api.post("/api/v1/admin/explore-index/rebuild", {"project_id": project}).status_code == 403
    assert admin_api.post("/api/v1/admin/explore-index/rebuild", {"project_id": "nope"}).status_code == 404
    # When an administrator rebuilds that project
    started = admin_api.post("/api/v1/admin/explore-index/rebuild", {"project_id": project})
    assert started.status_code == 202, started.json
    done = wait_for(admin_api, started.json["data"]["id"])
    # Then the operation reports what it rebuilt, the snapshot is back, and every answer is the truth
    assert done["status"] == "completed", done
    assert done["result"] == {"total_projects": 1, "total_images": 5}
    assert _snapshot_exists(stack, project)
    assert _answers(new_index_with_snapshots(), project, tags) == truth


def test_a_renamed_or_deleted_tag_shows_as_it_is_now_on_the_next_explore_page(stack, api, admin_api, small_world):
    project, ids, tags = small_world

    def shown() -> dict[str, str]:
        page = api.get(f"/api/v1/projects/{project}/explore?page_size=50").json["data"]["images"]
        return {tag["id"]: tag["name"] for image in page for tag in image["tags"]}

    # Given a page that showed the tag (the API instance now holds the tag list)
    assert shown()[tags[0]] == "snap-0"
    # When it is renamed, the next page shows the new name
    assert api.patch(f"/api/v1/tags/{tags[0]}", {"name": "renamed", "color": "#FF0000"}).status_code == 200
    assert shown()[tags[0]] == "renamed"
    # When it is deleted (force, an administrator's: it is on images), the next page no longer shows it
    assert admin_api.delete(f"/api/v1/tags/{tags[0]}?force=true").status_code == 200
    assert tags[0] not in shown()


def test_deleting_a_project_removes_its_index_snapshot(stack, api, small_world):
    project, ids, tags = small_world
    services().explore_index.current(project)
    assert _snapshot_exists(stack, project)
    assert api.delete(f"/api/v1/projects/{project}").status_code == 200
    assert not _snapshot_exists(stack, project)


def test_the_compactor_rewrites_a_snapshot_of_another_layout_so_no_request_builds_one(stack, api, small_world):
    """A deploy that changes the index's layout leaves every snapshot unusable: the compactor (with
    its ten minutes) writes them again, instead of each project's next Explore call."""
    from chalicelib.services.kept_index import snapshot_key
    from chalicelib.services.project_index import LAYOUT

    project, ids, tags = small_world
    services().explore_index.current(project)
    services().registry_index.index()
    s3, bucket, key = stack.aws("s3"), stack.variables["PIXELPOOL_CACHE_BUCKET"], snapshot_key(project)
    # Given the project's snapshot was written by an older layout
    s3.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": key}, MetadataDirective="REPLACE",
                   Metadata={**services().cache_bucket.metadata(key), "layout": "0"})
    # When the compactor runs, it writes that one (only)
    assert stack.scheduler.run_all()["compact_explore_index"] == {"snapshots_written": 1}
    assert services().cache_bucket.metadata(key)["layout"] == LAYOUT
    assert stack.scheduler.run_all()["compact_explore_index"] == {"snapshots_written": 0}


def test_a_rebuild_that_finishes_after_its_project_was_deleted_leaves_no_snapshot(stack, api, small_world):
    from types import SimpleNamespace

    project, ids, tags = small_world
    services().explore_index.current(project)
    assert _snapshot_exists(stack, project)
    # Given the project is deleted while a rebuild of it is under way
    assert api.delete(f"/api/v1/projects/{project}").status_code == 200
    assert not _snapshot_exists(stack, project)
    # When the rebuild's last step runs
    result = services().explore_rebuild.complete(SimpleNamespace(params={"project_id": project}), [], [])
    # Then it built nothing that outlives the project
    assert result["total_images"] == 0
    assert not _snapshot_exists(stack, project)

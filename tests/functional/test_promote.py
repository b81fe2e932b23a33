"""Promoting predictions into a job's annotations: drafts mapped to project labels, never overwriting
what is there, idempotent by prediction id — against the emulator, with real analyses posted by a
signed pipeline and real images in a real job."""
from __future__ import annotations

import pytest

from tests.functional.test_analyses import Pipeline, enable
from tests.functional.test_annotations import first_job, get, put

CAT = {"annotation_type": "bounding_box", "class_name": "cat", "confidence": 0.9,
       "data": {"x_min": 10, "y_min": 20, "x_max": 110, "y_max": 70}}


def prediction(kind: str = "bounding_box", class_name: str = "cat", confidence: float = 0.9, **data) -> dict:
    shapes = {"bounding_box": {"x_min": 10, "y_min": 20, "x_max": 110, "y_max": 70},
              "polygon": {"points": [[0, 0], [50, 0], [25, 40]]},
              "classification": {}, "keypoints": {"keypoints": [{"x": 5, "y": 5}]}}
    return {"annotation_type": kind, "class_name": class_name, "confidence": confidence,
            "data": {**shapes[kind], **data}}


class Job:
    """A project (labels cat: bbox, outline: polygon, indoor: classification, any: any) whose first
    job holds a 200×100 picture and the 640×427 rocket; a third image sits in the second job."""

    def __init__(self, stack, api, pipeline: Pipeline) -> None:
        self.api, self.pipeline = api, pipeline
        self.project_id, self.id, self.images, self.elsewhere = first_job(stack, api)
        self.path = f"/api/v1/jobs/{self.id}/predictions/promote"

    def analysis(self, image_id: str, predictions: list[dict], model: str = "yolo_v8", version: str = "1.0.0",
                 finish: str | None = "completed") -> str:
        """An analysis of the image with these predictions, finalized with `finish` (None: left processing)."""
        created = self.pipeline.post(f"/api/v1/images/{image_id}/analyses",
                                     {"model_name": model, "model_version": version})
        assert created.status_code == 201, created.json
        analysis_id = created.json["data"]["id"]
        a = f"/api/v1/analyses/{analysis_id}"
        assert self.pipeline.patch(f"{a}/status", {"status": "processing"}).status_code == 200
        posted = self.pipeline.post(f"{a}/annotations:bulk", {"annotations": predictions})
        assert posted.status_code == 200, posted.json
        if finish:
            assert self.pipeline.post(f"{a}/finalize", {"status": finish}).status_code == 200
        return analysis_id

    def predictions(self, analysis_id: str) -> list[dict]:
        return self.api.get(f"/api/v1/analyses/{analysis_id}").json["data"]["predictions"]

    def promote(self, body: dict, expected: int = 200) -> dict:
        answer = self.api.post(self.path, body)
        assert answer.status_code == expected, answer.json
        return answer.json["data"] if expected == 200 else answer.json["error"]


@pytest.fixture
def job(stack, client, api):
    enable(stack)
    return Job(stack, api, Pipeline(client))


def test_predictions_become_drafts_under_mapped_and_same_name_labels(job):
    # Given a completed analysis with a box of "cat" (a label), a polygon of "contour" (mapped to
    # "outline"), a classification of "indoor" (a label), a box of "dog" (no label) and keypoints
    image = job.images[0]
    analysis_id = job.analysis(image, [prediction(), prediction("polygon", "contour", 0.7),
                                       prediction("classification", "indoor", 0.6), prediction(class_name="dog"),
                                       prediction("keypoints", "cat")])
    ids = {(p["annotation_type"], p["class_name"]): p["id"] for p in job.predictions(analysis_id)}
    # When they are promoted into the job with a label map
    data = job.promote({"analysis_ids": [analysis_id], "label_map": {"contour": "outline"}})
    # Then three drafts were added, the others counted with the reason
    assert data["totals"] == {"images": 1, "promoted": 3, "already_present": 0, "below_confidence": 0,
                              "unmapped": {"dog": 1}, "not_promotable": {"keypoints": 1},
                              "captions": {"written": 0, "already_present": 0, "kept_by_person": 0, "not_allowed": 0}}
    saved = get(job.api, job.id, image)
    assert [(i["image_id"], i["rev"], sorted(i["annotation_ids"])) for i in data["images"]] == [
        (image, saved["rev"], sorted(f"pred-{ids[key]}" for key in (("bounding_box", "cat"), ("polygon", "contour"),
                                                                   ("classification", "indoor"))))]
    by_label = {a["label"]: a for a in saved["annotations"]}
    assert sorted(by_label) == ["cat", "indoor", "outline"]
    assert {a["state"] for a in saved["annotations"]} == {"draft"}
    # And the box is [x, y, w, h], the polygon keeps its points, each carries its source
    assert by_label["cat"]["bbox"] == [10, 20, 100, 50]
    assert by_label["outline"]["points"] == [[0, 0], [50, 0], [25, 40]]
    assert by_label["outline"]["attributes"] == {
        "source": "prediction", "analysis_id": analysis_id, "prediction_id": ids[("polygon", "contour")],
        "model_name": "yolo_v8", "model_version": "1.0.0", "confidence": 0.7}
    assert saved["is_annotated"] is True
    # And the job image counts as annotated, and the activity says what happened
    images = job.api.get(f"/api/v1/jobs/{job.id}").json["data"]["images"]
    assert [i["is_annotated"] for i in images if i["image_id"] == image] == [True]
    entry = job.api.get(f"/api/v1/projects/{job.project_id}/activity?page_size=1").json["data"][0]
    assert (entry["action"], entry["entity_id"]) == ("predictions_promoted", job.id)
    assert entry["details"]["promoted"] == 3 and entry["details"]["analysis_ids"] == [analysis_id]


def test_predictions_below_min_confidence_are_skipped(job):
    analysis_id = job.analysis(job.images[0], [prediction(confidence=0.3), prediction(confidence=0.8, x_min=0)])
    data = job.promote({"analysis_ids": [analysis_id], "min_confidence": 0.5})
    assert (data["totals"]["promoted"], data["totals"]["below_confidence"]) == (1, 1)
    assert [a["attributes"]["confidence"] for a in get(job.api, job.id, job.images[0])["annotations"]] == [0.8]


def test_confirmed_work_is_kept_and_a_confirmed_promoted_annotation_is_untouched(job):
    image = job.images[0]
    # Given a person's confirmed box exactly where the model will see the cat
    human = {"id": "by-hand", "type": "bbox", "label": "cat", "state": "confirmed", "bbox": [10, 20, 100, 50]}
    assert put(job.api, job.id, image, [human]).status_code == 200
    first = job.analysis(image, [prediction()])
    assert job.promote({"analysis_ids": [first]})["totals"]["promoted"] == 1
    # And a person then confirms and moves the promoted draft
    saved = get(job.api, job.id, image)
    promoted = next(a for a in saved["annotations"] if a["id"] != "by-hand")
    edited = {**promoted, "state": "confirmed", "bbox": [12, 22, 90, 40]}
    assert put(job.api, job.id, image, [human, edited], expected_rev=saved["rev"]).status_code == 200
    # When the same analysis and a new one are promoted
    second = job.analysis(image, [prediction(x_min=50)])
    data = job.promote({"analysis_ids": [first, second]})
    # Then only the new prediction is added; the person's box and the confirmed one are as they were
    assert (data["totals"]["promoted"], data["totals"]["already_present"]) == (1, 1)
    after = {a["id"]: a for a in get(job.api, job.id, image)["annotations"]}
    assert after["by-hand"] == {**human, "points": None, "attributes": None}
    assert after[promoted["id"]]["state"] == "confirmed" and after[promoted["id"]]["bbox"] == [12, 22, 90, 40]
    assert len(after) == 3


def test_a_save_between_the_promotes_read_and_write_is_kept_and_the_write_retried(job):
    from chalicelib.services.annotations import AnnotationService
    from chalicelib.services.container import services
    from chalicelib.store.annotations import AnnotationRepository
    from chalicelib.store.images import ImageRepository

    image = job.images[0]
    human = {"id": "by-hand", "type": "bbox", "label": "cat", "state": "confirmed", "bbox": [1, 1, 30, 30]}
    analysis_id = job.analysis(image, [prediction()])

    class Racing(AnnotationRepository):
        """The real store, with a person's save landing just before the promote's first write."""

        raced = False

        def replace(self, *args, **kwargs):
            if not Racing.raced:
                Racing.raced = True
                assert put(job.api, job.id, image, [human]).status_code == 200
            return super().replace(*args, **kwargs)

    built = services()
    built.override(annotations=AnnotationService(built.jobs, Racing(), ImageRepository(), built.documents_bucket,
                                                 built.activity))
    # When the promote's revision-guarded write loses to the person's save
    data = job.promote({"analysis_ids": [analysis_id]})
    # Then it read their set again and added to it: both are there, at the revision after theirs
    saved = get(job.api, job.id, image)
    assert Racing.raced and data["totals"]["promoted"] == 1
    assert sorted(a["id"] for a in saved["annotations"]) == sorted(["by-hand", *data["images"][0]["annotation_ids"]])
    assert saved["rev"] == data["images"][0]["rev"] == 2


def test_a_second_promote_writes_nothing(job):
    image = job.images[1]
    analysis_id = job.analysis(image, [prediction(), prediction("classification", "indoor")])
    first = job.promote({"model": "yolo_v8"})
    rev = get(job.api, job.id, image)["rev"]
    # When the same promote runs again
    again = job.promote({"model": "yolo_v8"})
    # Then nothing is written: same revision, nothing promoted, no image touched
    assert first["totals"]["promoted"] == 2 and first["analysis_ids"] == [analysis_id]
    assert again["totals"] == {**first["totals"], "images": 0, "promoted": 0, "already_present": 2}
    assert again["images"] == []
    assert get(job.api, job.id, image)["rev"] == rev


def test_analyses_of_images_outside_the_job_are_refused_naming_them(job):
    inside = job.analysis(job.images[0], [prediction()])
    outside = job.analysis(job.elsewhere[0], [prediction(x_max=60, y_max=50)])  # an 80×60 image
    error = job.promote({"analysis_ids": [inside, outside, "no-such-analysis"]}, 422)
    assert outside in error["message"] and "no-such-analysis" in error["message"]
    assert [d["field"] for d in error["details"]] == ["analysis_ids.1", "analysis_ids.2"]
    # and nothing was written
    assert get(job.api, job.id, job.images[0])["annotations"] == []


def test_only_completed_analyses_count(job):
    image = job.images[0]
    done = job.analysis(image, [prediction()])
    job.analysis(image, [prediction(x_min=0)], finish=None)  # still processing
    job.analysis(image, [prediction(x_min=1)], finish="failed")
    named = job.analysis(image, [prediction(x_min=2)], finish="canceled")
    assert job.promote({"analysis_ids": [named]})["totals"]["promoted"] == 0
    data = job.promote({"model": "yolo_v8"})
    assert data["analysis_ids"] == [done] and data["totals"]["promoted"] == 1


def test_model_and_version_select_the_analyses(job):
    image = job.images[0]
    job.analysis(image, [prediction(x_min=0)], version="1.0.0")
    newer = job.analysis(image, [prediction(x_min=1)], version="2.0.0")
    job.analysis(image, [prediction(x_min=2)], model="resnet50_classifier", version="2.0.0")
    data = job.promote({"model": "yolo_v8", "model_version": "2.0.0"})
    assert data["analysis_ids"] == [newer]
    assert [a["attributes"]["analysis_id"] for a in get(job.api, job.id, image)["annotations"]] == [newer]
    # And without a version, both of the model's (the classifier's stays out)
    assert job.promote({"model": "yolo_v8"})["totals"]["promoted"] == 1


@pytest.mark.parametrize(("body", "field"), [
    ({"analysis_ids": ["x"], "label_map": {"dog": "no-such-label"}}, "label_map.dog"),
    ({"analysis_ids": ["x"], "model": "yolo_v8"}, "model"),
    ({"min_confidence": 0.5}, "model"),
    ({"analysis_ids": ["x"], "model_version": "1"}, "model_version"),
    ({"model": "yolo_v8", "min_confidence": 1.5}, "min_confidence"),
])
def test_bad_requests_are_422_naming_the_field(job, body, field):
    error = job.promote(body, 422)
    assert field in [d["field"] for d in error["details"]], error
    assert field in error["message"]


def caption(text: str, confidence: float | None = None) -> dict:
    return {"annotation_type": "caption", "confidence": confidence, "data": {"text": text}}


def test_the_most_confident_caption_prediction_becomes_the_caption_once(job):
    first, second = job.images[0], job.images[1]
    # Given a captioning model's two captions of one image and one of another, one of them too weak
    a = job.analysis(first, [caption("a cat", 0.4), caption("a tabby cat on a sofa", 0.8)], model="resnet50_classifier")
    b = job.analysis(second, [caption("a rocket", 0.2)], model="resnet50_classifier")
    # When they are promoted with min_confidence 0.3
    data = job.promote({"analysis_ids": [a, b], "min_confidence": 0.3})
    # Then the first image's caption is the most confident, marked as a prediction; the weak one is skipped
    assert data["totals"]["captions"] == {"written": 1, "already_present": 0, "kept_by_person": 0, "not_allowed": 0}
    assert data["totals"]["below_confidence"] == 1 and data["totals"]["promoted"] == 0
    shown = job.api.get(f"/api/v1/shared-images/{first}").json["data"]["caption"]
    assert (shown["text"], shown["source"], shown["analysis_id"]) == ("a tabby cat on a sofa", "prediction", a)
    assert job.api.get(f"/api/v1/shared-images/{second}").json["data"]["caption"] is None
    # And promoting again writes nothing
    again = job.promote({"analysis_ids": [a, b], "min_confidence": 0.3})
    assert again["totals"]["captions"]["already_present"] == 1 and again["totals"]["captions"]["written"] == 0


def test_a_caption_a_person_wrote_is_never_replaced_but_a_promoted_one_is(job):
    first, second = job.images[0], job.images[1]
    assert job.api.request("PUT", f"/api/v1/shared-images/{first}/caption", {"text": "mine"}).status_code == 200
    old = job.analysis(second, [caption("first guess", 0.5)], model="resnet50_classifier")
    assert job.promote({"analysis_ids": [old]})["totals"]["captions"]["written"] == 1
    # When a newer model's captions of both are promoted
    new = [job.analysis(image, [caption("better guess", 0.9)], model="resnet50_classifier", version="2")
           for image in (first, second)]
    data = job.promote({"analysis_ids": new})
    # Then the person's caption stays and the promoted one is replaced
    assert data["totals"]["captions"] == {"written": 1, "already_present": 0, "kept_by_person": 1, "not_allowed": 0}
    assert job.api.get(f"/api/v1/shared-images/{first}").json["data"]["caption"]["text"] == "mine"
    assert job.api.get(f"/api/v1/shared-images/{second}").json["data"]["caption"]["text"] == "better guess"


def test_the_answer_says_when_no_analysis_matched_and_what_was_promoted(job):
    nothing = job.api.post(job.path, {"model": "yolo_v9"})
    assert nothing.status_code == 200
    assert nothing.json["message"] == "Nothing promoted: no completed analysis of model 'yolo_v9' of this job's images"
    analysis_id = job.analysis(job.images[0], [prediction(), caption("a cat", 0.9)])
    done = job.api.post(job.path, {"analysis_ids": [analysis_id]})
    assert done.json["message"] == ("Promoted 1 prediction(s) from 1 completed analysis(es) as draft annotations; "
                                    "1 caption(s) written")

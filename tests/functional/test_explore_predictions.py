"""Captions and predictions in Explore: an image's caption (written by a person, filterable by
substring), and prediction conditions over completed ML analyses (model, version, class,
confidence), each answered the same by the Explore index of this API process, by one of another
process and by the DynamoDB reference."""
from __future__ import annotations

import pytest

from chalicelib.services.container import services
from chalicelib.services.filters import ImageFilter
from tests.conftest import put_share_object
from tests.functional.test_analyses import Pipeline, enable
from tests.functional.test_explore_index import new_index
from tests.imagefiles import picture

SI = "/api/v1/shared-images"


@pytest.fixture
def world(stack, api):
    """Four images in one project's pool."""
    keys = [f"px/img_{n}.jpg" for n in range(4)]
    for n, key in enumerate(keys):
        put_share_object(stack, key, picture(64 + 8 * n, 48, seed=n))
    ids = [image["id"] for image in api.post(f"{SI}/register", {"file_paths": keys}).json["data"]["registered"]]
    project = api.post("/api/v1/projects", {"name": "preds"}).json["data"]["id"]
    assert api.post(f"/api/v1/projects/{project}/images", {"shared_image_ids": ids}).status_code == 200
    return project, ids


def explore(api, project: str, **conditions) -> set[str]:
    query = "&".join(f"{name}={value}" for name, value in conditions.items())
    response = api.get(f"/api/v1/projects/{project}/explore?page_size=200&{query}")
    assert response.status_code == 200, response.json
    return {image["id"] for image in response.json["data"]["images"]}


def every_index(project: str, **conditions) -> list[set[str]]:
    """The selection as the service's index, a fresh index (another API process) and PoolQuery see it."""
    image_filter = ImageFilter.model_validate(conditions)
    return [{entry.image_id for entry in index.select(project, image_filter).entries}
            for index in (services().explore_index, new_index(), services().pool_query)]


def analyze(pipeline: Pipeline, image_id: str, predictions: list[tuple[str, float]], *, model: str = "yolo_v8",
            version: str = "1.0.0", finish: str | None = "completed") -> str:
    made = pipeline.post(f"/api/v1/images/{image_id}/analyses", {"model_name": model, "model_version": version})
    assert made.status_code == 201, made.json
    a = f"/api/v1/analyses/{made.json['data']['id']}"
    assert pipeline.patch(f"{a}/status", {"status": "processing"}).status_code == 200
    if predictions:
        items = [{"annotation_type": "classification", "class_name": name, "confidence": confidence}
                 for name, confidence in predictions]
        assert pipeline.post(f"{a}/annotations:bulk", {"annotations": items}).status_code == 200
    if finish:
        assert pipeline.post(f"{a}/finalize", {"status": finish}).status_code == 200
    return made.json["data"]["id"]


# Captions -------------------------------------------------------------------------------------------


def test_a_caption_is_written_read_and_removed(api, world):
    _, ids = world
    # When a person writes free text, then ordered tags only
    text = api.request("PUT", f"{SI}/{ids[0]}/caption", {"text": "A tabby cat on a red mat"})
    tags = api.request("PUT", f"{SI}/{ids[1]}/caption", {"tags": ["cat", "sofa", "indoor"]})
    # Then the image shows it, with who wrote it; tags alone make the text
    assert text.status_code == 200, text.json
    caption = api.get(f"{SI}/{ids[0]}").json["data"]["caption"]
    assert (caption["text"], caption["source"], caption["updated_by"]) == ("A tabby cat on a red mat", "user", "alice")
    assert tags.json["data"]["caption"]["text"] == "cat, sofa, indoor"
    assert tags.json["data"]["caption"]["tags"] == ["cat", "sofa", "indoor"]
    # And removing it leaves none
    assert api.delete(f"{SI}/{ids[0]}/caption").json["data"]["caption"] is None
    assert api.get(f"{SI}/{ids[0]}").json["data"]["caption"] is None


@pytest.mark.parametrize(("body", "field"), [({}, "tags"), ({"text": ""}, "text"), ({"tags": []}, "tags"),
                                             ({"text": "x" * 2001}, "text")])
def test_a_bad_caption_is_422_naming_the_field(api, world, body, field):
    _, ids = world
    response = api.request("PUT", f"{SI}/{ids[0]}/caption", body)
    assert response.status_code == 422, response.json
    assert [detail["field"] for detail in response.json["error"]["details"]] == [field], response.json
    assert response.json["error"]["message"].startswith(f"Invalid body: {field} (")
    assert api.get(f"{SI}/{ids[0]}").json["data"]["caption"] is None


def test_an_unknown_image_cannot_be_captioned(api):
    assert api.request("PUT", f"{SI}/nope/caption", {"text": "x"}).status_code == 404


def test_explore_finds_captions_by_substring_in_every_index(api, world):
    project, ids = world
    warm = new_index()
    warm.select(project, ImageFilter())  # another process held the index before the captions
    api.request("PUT", f"{SI}/{ids[0]}/caption", {"text": "A Tabby CAT on a mat"})
    api.request("PUT", f"{SI}/{ids[1]}/caption", {"tags": ["dog", "catalogue"]})
    api.request("PUT", f"{SI}/{ids[2]}/caption", {"text": "a dog"})
    assert explore(api, project, caption="cat") == {ids[0], ids[1]}
    assert every_index(project, caption="tabby cat") == [{ids[0]}] * 3
    assert {entry.image_id for entry in warm.select(project, ImageFilter(caption="CAT")).entries} == {ids[0], ids[1]}
    assert explore(api, project, has_caption="false") == {ids[3]}
    # A caption changed or removed shows at once
    api.request("PUT", f"{SI}/{ids[0]}/caption", {"text": "a bird"})
    api.delete(f"{SI}/{ids[1]}/caption")
    assert every_index(project, caption="cat") == [set()] * 3
    assert {entry.image_id for entry in warm.select(project, ImageFilter(has_caption=True)).entries} == {ids[0], ids[2]}


# Predictions ----------------------------------------------------------------------------------------


def test_prediction_conditions_hold_for_one_prediction_of_a_completed_analysis(client, stack, api, world):
    enable(stack)
    pipeline = Pipeline(client)
    project, ids = world
    warm = new_index()
    warm.select(project, ImageFilter())
    analyze(pipeline, ids[0], [("cat", 0.9), ("dog", 0.3)])
    analyze(pipeline, ids[1], [("cat", 0.4)])
    analyze(pipeline, ids[2], [("cat", 0.2)], version="2.0.0")
    analyze(pipeline, ids[3], [("cat", 0.1)], finish=None)  # still processing: not in Explore
    analyze(pipeline, ids[3], [("cat", 0.45)], model="resnet50_classifier", finish="failed")
    # "yolo_v8 saw a cat with < 0.5 confidence": ids[0]'s low score is a dog's
    low_cats = {"prediction_model": "yolo_v8", "predicted_class": "cat", "confidence_below": 0.5}
    assert explore(api, project, **low_cats) == {ids[1], ids[2]}
    assert every_index(project, **low_cats) == [{ids[1], ids[2]}] * 3
    assert {e.image_id for e in warm.select(project, ImageFilter(**low_cats)).entries} == {ids[1], ids[2]}
    assert every_index(project, predicted_class="cat", min_confidence=0.4) == [{ids[0], ids[1]}] * 3
    assert every_index(project, prediction_model="yolo_v8", prediction_model_version="2.0.0") == [{ids[2]}] * 3
    assert every_index(project, prediction_model="resnet50_classifier") == [set()] * 3
    assert every_index(project, min_confidence=0.3, confidence_below=0.31) == [{ids[0]}] * 3


def test_a_completed_analysis_with_no_prediction_counts_for_its_model_only(client, stack, api, world):
    enable(stack)
    project, ids = world
    analyze(Pipeline(client), ids[0], [])
    assert every_index(project, prediction_model="yolo_v8") == [{ids[0]}] * 3
    assert every_index(project, prediction_model="yolo_v8", min_confidence=0) == [set()] * 3


def test_a_finalize_retried_after_a_lost_answer_is_answered_and_noted_again(client, stack, world):
    enable(stack)
    pipeline = Pipeline(client)
    project, ids = world
    analysis_id = analyze(pipeline, ids[0], [("cat", 0.7)])
    again = pipeline.post(f"/api/v1/analyses/{analysis_id}/finalize", {"status": "completed"})
    assert again.status_code == 200 and again.json["data"]["status"] == "completed"
    assert pipeline.post(f"/api/v1/analyses/{analysis_id}/finalize", {"status": "failed"}).status_code == 409
    assert every_index(project, predicted_class="cat") == [{ids[0]}] * 3


@pytest.mark.parametrize(("query", "field", "says"), [
    ("prediction_model_version=1", "prediction_model_version", "needs prediction_model"),
    ("min_confidence=0.6&confidence_below=0.5", "confidence_below", "must be above min_confidence (0.6)"),
    ("min_confidence=1.5", "min_confidence", "less than or equal to 1"),
    ("confidence_below=nan", "confidence_below", "finite number"),
])
def test_contradictory_prediction_conditions_are_422_naming_them(api, world, query, field, says):
    project, _ = world
    response = api.get(f"/api/v1/projects/{project}/explore?{query}")
    assert response.status_code == 422, response.json
    assert [detail["field"] for detail in response.json["error"]["details"]] == [field]
    assert f"{field} (" in response.json["error"]["message"] and says in response.json["error"]["message"]


def test_a_whole_rebuild_notes_analyses_completed_before_images_carried_them(stack, api, admin_api, world):
    from chalicelib.clock import utcnow
    from chalicelib.store.analyses import Analysis, AnalysisRepository, Prediction
    from tests.conftest import wait_for

    project, ids = world
    # Given an analysis completed by an earlier release: in its table, not noted on its image
    now = utcnow()
    repository = AnalysisRepository()
    repository.create([Analysis(id="old-one", image_id=ids[1], model_name="yolo_v8", model_version="0.9",
                                parameters={}, status="processing", key_id="default", artifacts=[],
                                prediction_count=0, error=None, created_at=now, updated_at=now)])
    repository.add_predictions({"old-one": [Prediction(id="p1", annotation_type="classification", class_name="cat",
                                                      confidence=0.8, data={}, storage_path=None, created_at=now)]},
                               "processing", now)
    repository.update("old-one", "processing", status="completed")
    assert every_index(project, predicted_class="cat") == [set()] * 3
    # When an administrator rebuilds every index
    started = admin_api.post("/api/v1/admin/explore-index/rebuild", {})
    done = wait_for(admin_api, started.json["data"]["id"])
    # Then the analysis is on its image, and Explore finds it
    assert done["status"] == "completed" and done["result"]["images_with_analyses"] == 1, done
    assert every_index(project, predicted_class="cat", prediction_model_version="0.9",
                       prediction_model="yolo_v8") == [{ids[1]}] * 3

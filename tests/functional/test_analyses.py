"""ML analyses from external pipelines: HMAC authentication, the seed's six-step lifecycle, what users
read — against the emulator (signatures, secrets, tables, the presigned PUT are all real)."""
from __future__ import annotations

import csv
import io
import json
import time

import pytest
import requests

from chalicelib.services.pipelines import canonical_query, sign
from tests.conftest import put_share_object
from tests.imagefiles import picture

SECRET = "seed-default-secret"
MODELS = "yolo_v8,resnet50_classifier"
WIDTH, HEIGHT = 120, 80
HEATMAP = b"\x89PNG\r\n\x1a\n" + b"heat" * 64


class Pipeline:
    """A pipeline's client: signs every request as docs/analyses.md says. Each request gets its own
    second (a later one when several are sent within a second): byte-identical requests signed
    in the same second are one request, and the second delivery a replay."""

    last_stamp = 0

    def __init__(self, client, secret: str = SECRET, key_id: str | None = None) -> None:
        self._client = client
        self.secret = secret
        self.key_id = key_id

    def headers(self, method: str, path: str, body: bytes, timestamp: int | None = None,
                extra: dict | None = None) -> dict:
        target, _, query = path.partition("?")
        pairs = [tuple(pair.split("=", 1)) for pair in query.split("&") if pair]
        if timestamp is None:
            timestamp = Pipeline.last_stamp = max(int(time.time()), Pipeline.last_stamp + 1)
        stamp = str(timestamp)
        headers = {"Content-Type": "application/json", "X-ML-Timestamp": stamp,
                   "X-ML-Signature": sign(self.secret, stamp, method, target, canonical_query(pairs), body)}
        if self.key_id:
            headers["X-ML-Key-Id"] = self.key_id
        return {**headers, **(extra or {})}

    def send(self, method: str, path: str, body=None, headers: dict | None = None):
        raw = json.dumps(body).encode() if body is not None else b""
        return self.raw(method, path, raw, self.headers(method, path, raw, extra=headers))

    def raw(self, method: str, path: str, raw: bytes, headers: dict):
        response = self._client.http.request(method, path, headers=headers, body=raw)
        response.json = json.loads(response.body) if response.body else None
        return response

    def post(self, path, body=None, **kw):
        return self.send("POST", path, body, **kw)

    def patch(self, path, body=None, **kw):
        return self.send("PATCH", path, body, **kw)


def enable(stack, **changes) -> None:
    from chalicelib.services.container import services

    settings = services().settings
    values = {"ml_analysis_enabled": True, "ml_allowed_models": MODELS, "ml_callback_hmac_secret": SECRET}
    services().override(settings=settings.model_copy(update={**values, **changes}))


def set_keys(stack, keys: dict[str, str]) -> None:
    from chalicelib.services.container import services

    stack.aws("secretsmanager").put_secret_value(SecretId=services().settings.ml_keys_secret,
                                                 SecretString=json.dumps({"keys": keys}))


def register(stack, admin_api, key: str = "ml/cat.jpg") -> str:
    put_share_object(stack, key, picture(WIDTH, HEIGHT))
    response = admin_api.post("/api/v1/shared-images/register", {"file_paths": [key]})
    assert response.status_code in (200, 201), response.json
    return response.json["data"]["registered"][0]["id"]


@pytest.fixture
def pipeline(client, stack):
    enable(stack)
    return Pipeline(client)


@pytest.fixture
def image_id(stack, admin_api):
    return register(stack, admin_api)


def create(pipeline: Pipeline, image_id: str, model: str = "yolo_v8") -> dict:
    response = pipeline.post(f"/api/v1/images/{image_id}/analyses",
                             {"model_name": model, "model_version": "1.0.0", "parameters": {"threshold": 0.5}})
    assert response.status_code == 201, response.json
    return response.json["data"]


def processing(pipeline: Pipeline, image_id: str) -> str:
    analysis_id = create(pipeline, image_id)["id"]
    assert pipeline.patch(f"/api/v1/analyses/{analysis_id}/status", {"status": "processing"}).status_code == 200
    return analysis_id


def box(**data) -> dict:
    return {"annotation_type": "bounding_box", "class_name": "cat", "confidence": 0.9,
            "data": {"x_min": 10, "y_min": 20, "x_max": 100, "y_max": 70, **data}}


# HMAC ----------------------------------------------------------------------------------------------


def test_a_validly_signed_request_passes(pipeline, image_id):
    # When a pipeline signs with the default secret (ML_CALLBACK_HMAC_SECRET)
    data = create(pipeline, image_id)
    # Then the analysis is queued
    assert (data["status"], data["model_name"], data["image_id"]) == ("queued", "yolo_v8", image_id)


@pytest.mark.parametrize("change", ["body", "path", "timestamp"])
def test_a_one_byte_change_of_body_path_or_timestamp_is_refused(pipeline, image_id, change):
    # Given a request signed for one body, path and timestamp
    path = f"/api/v1/images/{image_id}/analyses"
    body = json.dumps({"model_name": "yolo_v8", "model_version": "1.0.0"}).encode()
    headers = pipeline.headers("POST", path, body)
    # When one byte of one of them changes after signing
    if change == "body":
        body = body.replace(b"1.0.0", b"1.0.1")
    elif change == "path":
        path = f"/api/v1/images/{image_id[:-1]}{'0' if image_id[-1] != '0' else '1'}/analyses"
    else:
        headers["X-ML-Timestamp"] = str(int(headers["X-ML-Timestamp"]) - 1)
    response = pipeline.raw("POST", path, body, headers)
    # Then it is refused as unauthenticated, and nothing was created
    assert response.status_code == 401, response.json
    assert "X-ML-Signature does not match" in response.json["error"]["message"]


@pytest.mark.parametrize("offset", [301, -301])
def test_a_timestamp_301_seconds_away_is_refused(pipeline, image_id, offset):
    path = f"/api/v1/images/{image_id}/analyses"
    body = json.dumps({"model_name": "yolo_v8", "model_version": "1"}).encode()
    # Given a correct signature over a timestamp 301 s away
    headers = pipeline.headers("POST", path, body, timestamp=int(time.time()) + offset)
    # Then the request is refused
    response = pipeline.raw("POST", path, body, headers)
    assert response.status_code == 401
    assert "away from the server's clock" in response.json["error"]["message"]


def test_the_same_signed_request_twice_has_no_second_effect(pipeline, image_id, api):
    # Given a signed request that created an analysis
    path = f"/api/v1/images/{image_id}/analyses"
    body = json.dumps({"model_name": "yolo_v8", "model_version": "1"}).encode()
    headers = pipeline.headers("POST", path, body)
    assert pipeline.raw("POST", path, body, headers).status_code == 201
    # When the very same request arrives again
    again = pipeline.raw("POST", path, body, headers)
    # Then it is refused as a replay, saying so, and no second analysis exists
    assert again.status_code == 409
    assert again.json["error"]["code"] == "replayed_request"
    assert "replay" in again.json["error"]["message"]
    assert len(api.get(path).json["data"]) == 1


def test_a_wrong_key_id_is_refused(pipeline, image_id):
    # Given a pipeline naming a key that does not exist (with the right default secret)
    stranger = Pipeline(pipeline._client, SECRET, key_id="nope")
    response = stranger.post(f"/api/v1/images/{image_id}/analyses", {"model_name": "yolo_v8", "model_version": "1"})
    assert response.status_code == 401
    assert "Unknown key id 'nope'" in response.json["error"]["message"]


def test_rotation_two_active_keys_both_work_then_the_old_one_stops(stack, client, image_id):
    # Given the secret holds an old and a new key, and no seed default
    enable(stack, ml_callback_hmac_secret=None)
    set_keys(stack, {"2025-old": "old-secret", "2026-new": "new-secret"})
    old, new = Pipeline(client, "old-secret", "2025-old"), Pipeline(client, "new-secret", "2026-new")
    # Then both sign valid requests while both are active
    assert create(old, image_id)["status"] == "queued"
    assert create(new, image_id)["status"] == "queued"
    # And a key signing with another key's secret is refused
    assert Pipeline(client, "old-secret", "2026-new").post(
        f"/api/v1/images/{image_id}/analyses", {"model_name": "yolo_v8", "model_version": "1"}).status_code == 401
    # When the old key is removed (a new process reads the secret again)
    set_keys(stack, {"2026-new": "new-secret"})
    enable(stack, ml_callback_hmac_secret=None)
    # Then only the new key works
    assert old.post(f"/api/v1/images/{image_id}/analyses",
                    {"model_name": "yolo_v8", "model_version": "1"}).status_code == 401
    assert create(new, image_id)["status"] == "queued"


def test_a_key_added_to_the_secret_works_at_once_on_a_warm_instance(stack, client, image_id):
    # Given a warm instance that has read the secret already
    enable(stack)
    set_keys(stack, {"first": "first-secret"})
    assert create(Pipeline(client, "first-secret", "first"), image_id)["status"] == "queued"
    # When a second key is added for rotation
    set_keys(stack, {"first": "first-secret", "second": "second-secret"})
    from chalicelib.services import pipelines

    original = pipelines.REFRESH_UNKNOWN_AFTER
    pipelines.REFRESH_UNKNOWN_AFTER = 0.0
    try:
        # Then the unknown key id makes it read the secret again, and the new key works
        assert create(Pipeline(client, "second-secret", "second"), image_id)["status"] == "queued"
    finally:
        pipelines.REFRESH_UNKNOWN_AFTER = original


def test_pipeline_routes_accept_no_jwt_and_user_routes_accept_no_hmac(pipeline, image_id, admin_api, anonymous_api):
    path = f"/api/v1/images/{image_id}/analyses"
    body = {"model_name": "yolo_v8", "model_version": "1"}
    # A bearer token alone is not a signature
    assert admin_api.post(path, body).status_code == 401
    # A bearer token beside a valid signature is refused too: pipelines and users are kept apart
    both = pipeline.post(path, body, headers={"Authorization": f"Bearer {admin_api.token}"})
    assert both.status_code == 401 and "no bearer token" in both.json["error"]["message"]
    # A signature does not open a user route
    raw = b""
    signed = anonymous_api.request("GET", path, headers=pipeline.headers("GET", path, raw))
    assert signed.status_code == 401


def test_pipeline_routes_answer_404_while_the_feature_is_off(client, stack, image_id):
    # Given ML_ANALYSIS_ENABLED unset (the default), and a correctly signed request
    from chalicelib.services.container import services

    services().override(settings=services().settings.model_copy(update={"ml_callback_hmac_secret": SECRET}))
    response = Pipeline(client).post(f"/api/v1/images/{image_id}/analyses",
                                     {"model_name": "yolo_v8", "model_version": "1"})
    # Then the route answers as if it did not exist
    assert response.status_code == 404
    assert "ML_ANALYSIS_ENABLED" in response.json["error"]["message"]


def test_the_seed_setting_names_are_read():
    from chalicelib.config import Settings

    settings = Settings.from_env({"ML_ANALYSIS_ENABLED": "true", "ML_CALLBACK_HMAC_SECRET": "x",
                                  "ML_ALLOWED_MODELS": "yolo_v8, resnet50_classifier"})
    assert settings.ml_analysis_enabled and settings.ml_callback_hmac_secret == "x"
    assert settings.allowed_models == {"yolo_v8", "resnet50_classifier"}


# Lifecycle -------------------------------------------------------------------------------------------


def test_the_six_steps_of_the_seed_end_to_end(pipeline, image_id, api):
    # 1. create
    analysis_id = create(pipeline, image_id)["id"]
    a = f"/api/v1/analyses/{analysis_id}"
    # 2. processing
    moved = pipeline.patch(f"{a}/status", {"status": "processing"})
    assert moved.json["data"]["status"] == "processing"
    # 3. presigned PUT for the heatmap
    upload = pipeline.post(f"{a}/artifacts/presign", {"artifact_type": "heatmap", "filename": "heatmap.png",
                                                      "content_type": "image/png", "size": len(HEATMAP)})
    assert upload.status_code == 200, upload.json
    target = upload.json["data"]
    assert target["key"] == f"ml_outputs/{analysis_id}/heatmap.png"
    # 4. the artifact goes straight to S3
    sent = requests.put(target["url"], data=HEATMAP, headers=target["headers"], timeout=10)
    assert sent.status_code == 200, sent.text
    # 5. predictions
    heatmap = {"annotation_type": "heatmap", "data": {"width": 512, "height": 512},
               "storage_path": f"ml_outputs/{analysis_id}/heatmap.png"}
    posted = pipeline.post(f"{a}/annotations:bulk", {"annotations": [box(), heatmap]})
    assert posted.status_code == 200, posted.json
    assert posted.json["data"] == {"analysis_id": analysis_id, "written": 2, "prediction_count": 2,
                                   "replayed": False}
    # 6. finalize
    done = pipeline.post(f"{a}/finalize", {"status": "completed"})
    assert done.status_code == 200, done.json
    assert done.json["data"]["status"] == "completed"
    # Then a user sees it first in the image's list, with its predictions and the artifact itself
    listed = api.get(f"/api/v1/images/{image_id}/analyses").json["data"]
    assert [(x["id"], x["model_name"], x["model_version"], x["status"]) for x in listed] == [
        (analysis_id, "yolo_v8", "1.0.0", "completed")]
    detail = api.get(a).json["data"]
    assert sorted(p["annotation_type"] for p in detail["predictions"]) == ["bounding_box", "heatmap"]
    assert requests.get(detail["artifacts"][0]["url"], timeout=10).content == HEATMAP


def test_finalize_names_the_declared_artifacts_that_never_arrived(pipeline, image_id):
    analysis_id = processing(pipeline, image_id)
    a = f"/api/v1/analyses/{analysis_id}"
    for name in ("mask.png", "scores.json"):
        kind, ctype = ("mask", "image/png") if name.endswith("png") else ("json", "application/json")
        assert pipeline.post(f"{a}/artifacts/presign", {"artifact_type": kind, "filename": name,
                                                        "content_type": ctype, "size": 4}).status_code == 200
    # When it finalizes without uploading them
    response = pipeline.post(f"{a}/finalize", {"status": "completed"})
    # Then 422 names both, and the analysis stays processing
    assert response.status_code == 422
    assert "mask.png" in response.json["error"]["message"] and "scores.json" in response.json["error"]["message"]
    assert pipeline.patch(f"{a}/status", {"status": "failed"}).json["data"]["status"] == "failed"


def test_artifact_type_and_size_limits(pipeline, image_id):
    from chalicelib.services.container import services

    a = f"/api/v1/analyses/{processing(pipeline, image_id)}"
    wrong_type = pipeline.post(f"{a}/artifacts/presign", {"artifact_type": "mask", "filename": "m.png",
                                                          "content_type": "text/html", "size": 4})
    assert wrong_type.status_code == 422 and "text/html" in wrong_type.json["error"]["message"]
    too_big = pipeline.post(f"{a}/artifacts/presign", {"artifact_type": "json", "filename": "s.json",
                                                       "size": services().settings.ml_artifact_max_bytes + 1})
    assert too_big.status_code == 422 and "limit" in too_big.json["error"]["message"]
    escape = pipeline.post(f"{a}/artifacts/presign", {"artifact_type": "json", "filename": "../x.json", "size": 4})
    assert escape.status_code == 422


@pytest.mark.parametrize(("moves", "illegal"), [
    ([], "completed"),  # PATCH never completes: finalize does
    (["processing", "canceled"], "processing"),
    (["processing"], "processing"),
    (["failed"], "canceled"),
])
def test_illegal_status_moves_are_409(pipeline, image_id, moves, illegal):
    a = f"/api/v1/analyses/{create(pipeline, image_id)['id']}"
    for status in moves:
        assert pipeline.patch(f"{a}/status", {"status": status}).status_code == 200
    response = pipeline.patch(f"{a}/status", {"status": illegal})
    assert response.status_code == (422 if illegal == "completed" else 409), response.json


def test_completing_a_queued_analysis_is_409(pipeline, image_id):
    a = f"/api/v1/analyses/{create(pipeline, image_id)['id']}"
    response = pipeline.post(f"{a}/finalize", {"status": "completed"})
    assert response.status_code == 409 and "from 'queued' to 'completed'" in response.json["error"]["message"]


def test_an_unknown_model_is_422_naming_it(pipeline, image_id):
    response = pipeline.post(f"/api/v1/images/{image_id}/analyses", {"model_name": "gpt_vision", "model_version": "1"})
    assert response.status_code == 422
    assert "gpt_vision" in response.json["error"]["message"]


def test_prediction_geometry_outside_the_image_is_422_naming_index_and_field(pipeline, image_id):
    a = f"/api/v1/analyses/{processing(pipeline, image_id)}"
    polygon = {"annotation_type": "polygon", "class_name": "cat", "confidence": 0.5,
               "data": {"points": [[0, 0], [10, 0], [10, HEIGHT + 1]]}}
    response = pipeline.post(f"{a}/annotations:bulk", {"annotations": [box(), box(x_max=WIDTH + 5), polygon]})
    assert response.status_code == 422, response.json
    fields = {detail["field"] for detail in response.json["error"]["details"]}
    assert fields == {"annotations.1.data.x_max", "annotations.2.data.points.2.y"}
    assert "annotations.1.data.x_max" in response.json["error"]["message"]
    # and nothing was stored
    assert pipeline.post(f"{a}/annotations:bulk", {"annotations": [box()]}).json["data"]["prediction_count"] == 1


def test_confidence_outside_0_1_is_422(pipeline, image_id):
    a = f"/api/v1/analyses/{processing(pipeline, image_id)}"
    response = pipeline.post(f"{a}/annotations:bulk", {"annotations": [{**box(), "confidence": 1.5}]})
    assert response.status_code == 422
    assert "annotations.0.confidence" in response.json["error"]["message"]


def test_a_retried_bulk_post_with_its_idempotency_key_is_a_no_op(pipeline, image_id, api):
    a = f"/api/v1/analyses/{processing(pipeline, image_id)}"
    body = {"annotations": [box(), box(x_min=0)]}
    # When the same post is sent twice (each signed afresh) with one Idempotency-Key
    first = pipeline.post(f"{a}/annotations:bulk", body, headers={"Idempotency-Key": "batch-0001"})
    # (each is signed with its own timestamp: a retry is a new signed request)
    retry = pipeline.post(f"{a}/annotations:bulk", body, headers={"Idempotency-Key": "batch-0001"})
    # Then the retry answers the first answer, says so, and nothing more is stored
    assert first.status_code == retry.status_code == 200, retry.json
    assert retry.json["data"] == {**first.json["data"], "replayed": True}
    assert "nothing written again" in retry.json["message"]
    assert len(api.get(a).json["data"]["predictions"]) == 2
    # And the same key with another body is refused
    other = pipeline.post(f"{a}/annotations:bulk", {"annotations": [box()]}, headers={"Idempotency-Key": "batch-0001"})
    assert other.status_code == 422


def test_one_post_carries_predictions_of_several_analyses_all_or_none(pipeline, stack, admin_api, image_id, api):
    second = register(stack, admin_api, "ml/dog.jpg")
    first_a, second_a = processing(pipeline, image_id), processing(pipeline, second)
    many = "/api/v1/analyses/annotations:bulk"
    # When one post carries three predictions of the first analysis and one of the second
    items = [{**box(), "analysis_id": first_a}, {**box(x_min=0), "analysis_id": second_a},
             {**box(x_min=1), "analysis_id": first_a}, {**box(x_min=2), "analysis_id": first_a}]
    posted = pipeline.post(many, {"annotations": items})
    # Then each analysis holds its own, counted
    assert posted.status_code == 200, posted.json
    assert posted.json["data"]["analyses"] == [
        {"analysis_id": first_a, "written": 3, "prediction_count": 3},
        {"analysis_id": second_a, "written": 1, "prediction_count": 1}]
    assert [len(api.get(f"/api/v1/analyses/{a}").json["data"]["predictions"]) for a in (first_a, second_a)] == [3, 1]
    # And a post with one bad item, an unknown analysis or a closed one writes nothing at all
    bad = pipeline.post(many, {"annotations": [{**box(), "analysis_id": first_a},
                                               {**box(x_max=WIDTH + 1), "analysis_id": second_a}]})
    assert bad.status_code == 422 and [d["field"] for d in bad.json["error"]["details"]] == ["annotations.1.data.x_max"]
    unknown = pipeline.post(many, {"annotations": [{**box(), "analysis_id": first_a}, {**box(), "analysis_id": "nope"}]})
    assert unknown.status_code == 404 and "nope" in unknown.json["error"]["message"]
    assert pipeline.patch(f"/api/v1/analyses/{second_a}/status", {"status": "canceled"}).status_code == 200
    closed = pipeline.post(many, {"annotations": [{**box(), "analysis_id": first_a}, {**box(), "analysis_id": second_a}]})
    assert closed.status_code == 409 and second_a in closed.json["error"]["message"]
    assert [len(api.get(f"/api/v1/analyses/{a}").json["data"]["predictions"]) for a in (first_a, second_a)] == [3, 1]
    # And an item without its analysis is 422 naming the field
    missing = pipeline.post(many, {"annotations": [box()]})
    assert missing.status_code == 422 and "annotations.0.analysis_id" in str(missing.json["error"])
    # And a retry with its Idempotency-Key is a no-op there too
    body = {"annotations": [{**box(x_min=3), "analysis_id": first_a}]}
    once = pipeline.post(many, body, headers={"Idempotency-Key": "many-1"})
    again = pipeline.post(many, body, headers={"Idempotency-Key": "many-1"})
    assert again.json["data"] == {**once.json["data"], "replayed": True}
    assert len(api.get(f"/api/v1/analyses/{first_a}").json["data"]["predictions"]) == 4


def test_the_batch_form_queues_one_analysis_per_image(pipeline, stack, admin_api, image_id):
    second = register(stack, admin_api, "ml/dog.jpg")
    response = pipeline.post("/api/v1/analyses/batch", {"image_ids": [image_id, second], "model_name": "yolo_v8",
                                                        "model_version": "2"})
    assert response.status_code == 201, response.json
    assert sorted(a["image_id"] for a in response.json["data"]["analyses"]) == sorted([image_id, second])
    missing = pipeline.post("/api/v1/analyses/batch", {"image_ids": [image_id, "nope"], "model_name": "yolo_v8",
                                                       "model_version": "2"})
    assert missing.status_code == 404 and "nope" in missing.json["error"]["message"]


def test_users_read_newest_first_and_export_json_and_csv(pipeline, image_id, api):
    older = processing(pipeline, image_id)
    pipeline.post(f"/api/v1/analyses/{older}/annotations:bulk", {"annotations": [box()]})
    newer = create(pipeline, image_id, "resnet50_classifier")["id"]
    listed = api.get(f"/api/v1/images/{image_id}/analyses").json["data"]
    assert [a["id"] for a in listed] == [newer, older]
    exported = api.get(f"/api/v1/analyses/{older}/export?format=json").json["data"]
    assert exported["document"]["analysis"]["id"] == older
    assert exported["document"]["predictions"][0]["class_name"] == "cat"
    table = api.get(f"/api/v1/analyses/{older}/export?format=csv").json["data"]
    rows = list(csv.DictReader(io.StringIO(table["csv"])))
    assert [(r["class_name"], r["x_min"], r["confidence"]) for r in rows] == [("cat", "10", "0.9")]
    assert api.get("/api/v1/analyses/nope").status_code == 404


def test_a_bulk_post_takes_1000_predictions_and_refuses_1001(pipeline, image_id, api):
    a = f"/api/v1/analyses/{processing(pipeline, image_id)}"
    from pynamodb.signals import pre_dynamodb_send

    many = [box(x_min=n % 10) for n in range(1000)]
    sent: list[str] = []

    def record(sender, operation_name, table_name, req_uuid, **_):
        sent.append(operation_name)

    # When a pipeline posts the largest batch
    pre_dynamodb_send.connect(record)
    try:
        posted = pipeline.post(f"{a}/annotations:bulk", {"annotations": many})
    finally:
        pre_dynamodb_send.disconnect(record)
    # Then all are stored with BatchWriteItem at its floor, 25 items a request, and read back
    assert posted.status_code == 200, posted.json
    assert posted.json["data"]["written"] == 1000
    assert sent.count("BatchWriteItem") == 1000 // 25
    assert len(api.get(a).json["data"]["predictions"]) == 1000
    # And one more is refused whole
    assert pipeline.post(f"{a}/annotations:bulk", {"annotations": many + [box()]}).status_code == 422


def test_the_template_declares_the_secret_and_the_ttl_tables(stack):
    from chalicelib.services.container import services

    settings = services().settings
    secret = stack.aws("secretsmanager").get_secret_value(SecretId=settings.ml_keys_secret)
    assert json.loads(secret["SecretString"]) == {"keys": {}}
    ddb = stack.aws("dynamodb")
    for table, attribute in ((settings.pipeline_signatures_table, "expires_at"),
                             (settings.idempotency_table, "expiration")):
        ttl = ddb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
        assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", attribute)
    indexes = ddb.describe_table(TableName=settings.analyses_table)["Table"]["GlobalSecondaryIndexes"]
    assert [index["IndexName"] for index in indexes] == ["by_image", "by_dataset"]


# The simulation script (scripts/test_ml_pipeline.py) -----------------------------------------------


def test_the_simulation_script_runs_the_six_steps_over_http(stack, admin_api, image_id):
    import importlib.util
    import threading

    from chalice import Chalice
    from chalice.local import create_local_server

    from tests.conftest import ROOT

    # Given the app served over HTTP as `make run` serves it, with ML analyses on
    enable(stack)
    # create_local_server re-parents the app's class; from a plain Chalice, and put back after,
    # so that another module's server in this process (test_fuzz) can do the same.
    served_class = stack.app.__class__
    stack.app.__class__ = Chalice
    server = create_local_server(stack.app, stack.chalice_config(), "127.0.0.1", 0)
    threading.Thread(target=server.server.serve_forever, name="ml-api", daemon=True).start()
    spec = importlib.util.spec_from_file_location("test_ml_pipeline", ROOT / "scripts" / "test_ml_pipeline.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    try:
        # When the script runs, finding the image with a user's token
        api = f"http://127.0.0.1:{server.server.server_address[1]}"
        analysis = script.run(script.parse(["--api", api, "--secret", SECRET, "--token", admin_api.token, "--quiet"]))
    finally:
        server.server.shutdown()
        server.server.server_close()
        stack.app.__class__ = served_class
    # Then the analysis is completed with its predictions, and the artifact came back intact
    assert analysis["status"] == "completed" and analysis["image_id"] == image_id
    assert sorted(p["annotation_type"] for p in analysis["predictions"]) == ["bounding_box", "classification",
                                                                             "heatmap"]


def test_the_openapi_document_marks_pipeline_routes_as_signed():
    from chalicelib.api.openapi import document_dict

    paths = document_dict()["paths"]
    assert paths["/api/v1/analyses/{analysis_id}/annotations:bulk"]["post"]["security"] == [{"pipeline_hmac": []}]
    assert "security" not in paths["/api/v1/analyses/{analysis_id}"]["get"]  # the document's default: bearer


def test_a_project_exports_the_analyses_of_the_images_its_filter_selects(pipeline, stack, admin_api, api):
    # Given a project whose pool holds a narrow (120 px) and a wide (400 px) image, each with analyses
    narrow = register(stack, admin_api, "ml/narrow.jpg")
    put_share_object(stack, "ml/wide.jpg", picture(400, 80, seed=3))
    registered = admin_api.post("/api/v1/shared-images/register", {"file_paths": ["ml/wide.jpg"]})
    wide = registered.json["data"]["registered"][0]["id"]
    project = admin_api.post("/api/v1/projects", {"name": "Predictions"}).json["data"]["id"]
    assert admin_api.post(f"/api/v1/projects/{project}/images",
                          {"shared_image_ids": [narrow, wide]}).status_code in (200, 201)
    for image in (narrow, wide):
        analysis = processing(pipeline, image)
        pipeline.post(f"/api/v1/analyses/{analysis}/annotations:bulk", {"annotations": [box()]})
    other_model = create(pipeline, wide, "resnet50_classifier")["id"]
    # When the project exports the analyses of its wide images, one model's only
    path = f"/api/v1/projects/{project}/analyses/export?min_width=200&model_name=yolo_v8"
    document = admin_api.get(path + "&format=json").json["data"]["document"]
    table = admin_api.get(path + "&format=csv").json["data"]["csv"]
    # Then only the wide image's yolo analysis is there, with its prediction
    assert [(a["image_id"], a["model_name"]) for a in document["analyses"]] == [(wide, "yolo_v8")]
    assert document["analyses"][0]["id"] != other_model and len(document["analyses"][0]["predictions"]) == 1
    assert [row["image_id"] for row in csv.DictReader(io.StringIO(table))] == [wide]
    # And someone outside the project learns nothing
    assert api.get(path).status_code == 404


def test_a_refused_post_leaves_its_idempotency_key_free_for_the_corrected_one(pipeline, image_id, api):
    a = f"/api/v1/analyses/{processing(pipeline, image_id)}"
    key = {"Idempotency-Key": "batch-0002"}
    # Given a post refused for its geometry
    refused = pipeline.post(f"{a}/annotations:bulk", {"annotations": [box(x_max=WIDTH * 2)]}, headers=key)
    assert refused.status_code == 422
    # When the corrected post is sent with the same key
    fixed = pipeline.post(f"{a}/annotations:bulk", {"annotations": [box()]}, headers=key)
    # Then it is stored, not refused as a reuse of the key
    assert fixed.status_code == 200, fixed.json
    assert fixed.json["data"]["replayed"] is False and len(api.get(a).json["data"]["predictions"]) == 1


def test_analyses_are_in_the_global_activity_log_by_their_pipeline_key(pipeline, stack, admin_api, image_id):
    from chalicelib.services.container import services

    # Given one analysis created alone, a batch of two, one completed and one failed
    alone = create(pipeline, image_id)["id"]
    second = register(stack, admin_api, "ml/dog.jpg")
    batch = pipeline.post("/api/v1/analyses/batch", {"image_ids": [image_id, second], "model_name": "yolo_v8",
                                                     "model_version": "2"})
    batch_ids = [a["id"] for a in batch.json["data"]["analyses"]]
    finished = processing(pipeline, image_id)
    pipeline.post(f"/api/v1/analyses/{finished}/annotations:bulk", {"annotations": [box()]})
    assert pipeline.post(f"/api/v1/analyses/{finished}/finalize", {"status": "completed"}).status_code == 200
    assert pipeline.patch(f"/api/v1/analyses/{alone}/status", {"status": "failed", "error": "OOM"}).status_code == 200
    # When the global activity log is read
    entries, _ = services().activity.newest(None, limit=50)
    logged = [e for e in entries if e.entity_type.startswith("analysis")]
    # Then each creation request, and each final status, is one entry, by no user but the key
    assert [(e.entity_type, e.action) for e in logged] == [
        ("analysis", "failed"), ("analysis", "completed"), ("analysis", "created"), ("analysis_batch", "created"),
        ("analysis", "created")]
    assert {(e.actor, e.project_id, e.details["pipeline_key_id"]) for e in logged} == {(None, None, "default")}
    assert (logged[0].entity_id, logged[0].details["error"]) == (alone, "OOM")
    assert (logged[1].entity_id, logged[1].details["prediction_count"]) == (finished, 1)
    assert (logged[3].details["count"], logged[3].details["analysis_ids"]) == (2, batch_ids)
    assert logged[4].entity_id == alone and logged[4].details["image_id"] == image_id


def test_a_post_whose_analysis_closed_meanwhile_leaves_no_prediction_anywhere(pipeline, stack, admin_api, image_id):
    from chalicelib.clock import utcnow
    from chalicelib.errors import ConflictError
    from chalicelib.store.analyses import AnalysisRepository, Prediction

    # Given two analyses checked open by a post, one of which is then canceled before the post counts
    second = register(stack, admin_api, "ml/dog.jpg")
    open_one, closing = processing(pipeline, image_id), processing(pipeline, second)
    assert pipeline.patch(f"/api/v1/analyses/{closing}/status", {"status": "canceled"}).status_code == 200
    now = utcnow()
    made = {a: [Prediction(id=f"{a[:8]}-{n}", annotation_type="classification", class_name="cat", confidence=0.5,
                           data={}, storage_path=None, created_at=now) for n in range(30)] for a in (open_one, closing)}
    repository = AnalysisRepository()
    # When the post writes and counts
    with pytest.raises(ConflictError) as refused:
        repository.add_predictions(made, "processing", now)
    # Then it is refused naming the closed one, and neither analysis keeps a prediction or a count
    assert closing in refused.value.message and open_one not in refused.value.message
    assert [repository.predictions(a) for a in (open_one, closing)] == [[], []]
    assert [repository.get(a).prediction_count for a in (open_one, closing)] == [0, 0]


def test_one_post_takes_at_most_100_analyses(pipeline, image_id):
    items = [{**box(), "analysis_id": f"analysis-{n}"} for n in range(101)]
    response = pipeline.post("/api/v1/analyses/annotations:bulk", {"annotations": items})
    assert response.status_code == 422 and "at most 100 analyses" in response.json["error"]["message"]


def test_idempotency_keys_of_posts_across_analyses_are_each_pipelines_own(pipeline, stack, admin_api, image_id, api):
    second = register(stack, admin_api, "ml/dog.jpg")
    first_a, second_a = processing(pipeline, image_id), processing(pipeline, second)
    many = "/api/v1/analyses/annotations:bulk"
    # When a pipeline reuses a batch number another post of its own used with another body, 422;
    once = pipeline.post(many, {"annotations": [{**box(), "analysis_id": first_a}]}, headers={"Idempotency-Key": "b-1"})
    assert once.status_code == 200
    reused = pipeline.post(many, {"annotations": [{**box(), "analysis_id": second_a}]}, headers={"Idempotency-Key": "b-1"})
    assert reused.status_code == 422
    # but another pipeline (its own key id) numbering its batches alike is not affected
    set_keys(stack, {"other": "other-secret"})
    enable(stack)  # a process that reads the secret afresh
    other = Pipeline(pipeline._client, secret="other-secret", key_id="other")
    theirs = other.post(many, {"annotations": [{**box(), "analysis_id": second_a}]}, headers={"Idempotency-Key": "b-1"})
    assert theirs.status_code == 200 and theirs.json["data"]["replayed"] is False, theirs.json
    assert len(api.get(f"/api/v1/analyses/{second_a}").json["data"]["predictions"]) == 1

"""Datasets: the resource, and uploads of images, ZIPs and annotation files straight to S3."""
from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.responses import ok
from chalicelib.api.routing import endpoint
from chalicelib.schemas.base import PageMeta
from chalicelib.schemas.datasets import (
    BulkDeleteBody, BulkDeleteResultOut, DeleteDatasetBody, DeletionImpactOut,
    DatasetCreate, DatasetDetailOut, ImportBody, StagedOut, DatasetListQuery, DatasetOut, DatasetUpdate, FolderOut, ImageUploadBody,
    PartUploadOut, PartUrlsQuery, ReceivedPartOut, ReceivedQuery, StorageOut, UploadComplete, UploadedOut, UploadRef,
    UploadStart,
)
from chalicelib.schemas.operations import OperationOut
from chalicelib.schemas.projects import ActivityOut, ActivityQuery, CursorMeta
from chalicelib.schemas.share import UploadOut
from chalicelib.services.container import services
from chalicelib.store.datasets import Dataset

bp = Blueprint(__name__)
BASE = "/api/v1/datasets"
ONE = f"{BASE}/{{dataset_id}}"


def dataset_out(dataset: Dataset) -> dict:
    return dict(
        id=dataset.id, name=dataset.name, description=dataset.description, owner_id=dataset.owner_id,
        status=dataset.status, labeled=dataset.labeled, image_count=dataset.image_count,
        annotation_count=dataset.annotation_count, prefix=dataset.prefix, project_id=dataset.project_id,
        state=dataset.state, deleted_at=dataset.deleted_at, deleted_by=dataset.deleted_by,
        purged_at=dataset.purged_at, restorable_until=services().datasets.restorable_until(dataset),
        storage=StorageOut(total_bytes=dataset.storage_bytes, images_bytes=dataset.bytes_images,
                           annotations_bytes=dataset.bytes_annotations, other_bytes=dataset.bytes_other),
        created_at=dataset.created_at, updated_at=dataset.updated_at,
    )


def detail_out(dataset: Dataset) -> DatasetDetailOut:
    return DatasetDetailOut(**dataset_out(dataset),
                            folders=[FolderOut(path=path, image_count=count)
                                     for path, count in sorted(dataset.folders.items())],
                            imports=list(reversed(dataset.imports)),
                            deletion=services().datasets.deletion_view(dataset))


@endpoint(bp, BASE, "POST", body=DatasetCreate, response=DatasetDetailOut, status=201)
def create_dataset(identity, body: DatasetCreate):
    """Create an empty dataset (its name unique among yours, ignoring case; 409 otherwise)."""
    dataset = services().datasets.create(identity, body.name, body.description)
    return ok(detail_out(dataset), f"Dataset '{dataset.name}' created", 201)


@endpoint(bp, BASE, query=DatasetListQuery, response=list[DatasetOut], paginated=True)
def list_datasets(identity, query: DatasetListQuery):
    """Your datasets (every dataset for an administrator): search, labeled, status, sort, pages."""
    found, total = services().datasets.list(identity, search=query.search, labeled=query.labeled, status=query.status,
                                            state=query.state, sort=query.sort, descending=query.order == "desc", page=query.page,
                                            page_size=query.page_size)
    return ok([DatasetOut(**dataset_out(dataset)) for dataset in found], f"Found {total} dataset(s)",
              meta=PageMeta(total=total, page=query.page, page_size=query.page_size))


@endpoint(bp, ONE, response=DatasetDetailOut)
def get_dataset(dataset_id, identity):
    """One dataset: status, counts, storage by kind, folders, its project and import history."""
    return ok(detail_out(services().datasets.get(identity, dataset_id)), "Dataset found")


@endpoint(bp, ONE, "PATCH", body=DatasetUpdate, response=DatasetDetailOut)
def update_dataset(dataset_id, identity, body: DatasetUpdate):
    """Rename a dataset or change its description."""
    dataset = services().datasets.update(identity, dataset_id, body.model_dump(exclude_unset=True))
    return ok(detail_out(dataset), f"Dataset '{dataset.name}' updated")


@endpoint(bp, f"{ONE}/upload-urls", "POST", body=ImageUploadBody, response=list[UploadOut])
def dataset_image_upload_urls(dataset_id, identity, body: ImageUploadBody):
    """Presigned POSTs of images into the dataset's folder in the share (registered when they land)."""
    uploads = services().datasets.image_upload_urls(identity, dataset_id, [f.model_dump() for f in body.files],
                                                    body.folder)
    return ok([UploadOut.model_validate(upload) for upload in uploads],
              f"{len(uploads)} upload URL(s) valid until {uploads[0].expires_at.isoformat()}")


@endpoint(bp, f"{ONE}/uploads", "POST", body=UploadStart, response=PartUploadOut, status=201)
def start_dataset_upload(dataset_id, identity, body: UploadStart):
    """Start a multipart upload of a ZIP or an annotation file: presigned PUT URLs for its parts."""
    upload = services().datasets.start_upload(identity, dataset_id, body.file_name, body.size, body.first_parts)
    return ok(PartUploadOut.model_validate(upload), f"Upload of '{upload.file_name}' started: "
              f"{upload.part_count} part(s) of {upload.part_size} bytes", 201)


@endpoint(bp, f"{ONE}/uploads/part-urls", query=PartUrlsQuery, response=PartUploadOut)
def dataset_upload_part_urls(dataset_id, identity, query: PartUrlsQuery):
    """More part URLs of an upload in progress (parts `first` .. `first + count - 1`)."""
    upload = services().datasets.part_urls(identity, dataset_id, query.file_name, query.upload_id, query.size,
                                           query.first, query.count)
    return ok(PartUploadOut.model_validate(upload), f"{len(upload.parts)} part URL(s)")


@endpoint(bp, f"{ONE}/uploads/parts", query=ReceivedQuery, response=list[ReceivedPartOut])
def dataset_upload_received_parts(dataset_id, identity, query: ReceivedQuery):
    """The parts S3 has received so far (to resume an interrupted upload)."""
    parts = services().datasets.received_parts(identity, dataset_id, query.file_name, query.upload_id)
    return ok([ReceivedPartOut.model_validate(part) for part in parts], f"{len(parts)} part(s) received")


@endpoint(bp, f"{ONE}/uploads/complete", "POST", body=UploadComplete, response=UploadedOut)
def complete_dataset_upload(dataset_id, identity, body: UploadComplete):
    """Join the uploaded parts into the file."""
    done = services().datasets.complete_upload(identity, dataset_id, body.file_name, body.upload_id,
                                               [(part.part_number, part.etag) for part in body.parts])
    return ok(UploadedOut.model_validate(done), f"'{done['file_name']}' uploaded")


@endpoint(bp, f"{ONE}/uploads/abort", "POST", body=UploadRef, response=UploadRef)
def abort_dataset_upload(dataset_id, identity, body: UploadRef):
    """Abort an upload in progress and drop its parts."""
    services().datasets.abort_upload(identity, dataset_id, body.file_name, body.upload_id)
    return ok(body, f"Upload of '{body.file_name}' aborted")


@endpoint(bp, f"{ONE}/uploads", response=list[StagedOut])
def list_staged_uploads(dataset_id, identity):
    """The completed uploads waiting for the next import (ZIPs, annotation files)."""
    staged = services().datasets.staged(identity, dataset_id)
    return ok([StagedOut.model_validate(item) for item in staged], f"{len(staged)} file(s) staged")


@endpoint(bp, f"{ONE}/uploads/{{file_name}}", "DELETE", response=StagedOut)
def delete_staged_upload(dataset_id, file_name, identity):
    """Remove a completed upload before it is imported (e.g. an archive an import refused)."""
    removed = services().datasets.remove_staged(identity, dataset_id, file_name)
    return ok(StagedOut.model_validate(removed), f"'{removed['file_name']}' removed")


@endpoint(bp, f"{BASE}/audit", query=ActivityQuery, response=list[ActivityOut])
def every_datasets_audit(identity, query: ActivityQuery):
    """Administrators: the audit log of every dataset, newest first (kept after a purge)."""
    entries, cursor = services().datasets.audit(identity, None, query.page_size, query.cursor)
    return ok([ActivityOut.model_validate(entry) for entry in entries], f"Found {len(entries)} entries",
              meta=CursorMeta(page_size=query.page_size, next_cursor=cursor))


@endpoint(bp, f"{ONE}/audit", query=ActivityQuery, response=list[ActivityOut])
def dataset_audit(dataset_id, identity, query: ActivityQuery):
    """The dataset's audit log, newest first: created, uploaded (later deleted, restored, purged)."""
    entries, cursor = services().datasets.audit(identity, dataset_id, query.page_size, query.cursor)
    return ok([ActivityOut.model_validate(entry) for entry in entries], f"Found {len(entries)} entries",
              meta=CursorMeta(page_size=query.page_size, next_cursor=cursor))


@endpoint(bp, f"{ONE}/import", "POST", body=ImportBody, response=OperationOut, status=202)
def import_dataset(dataset_id, identity, body: ImportBody):
    """Import what the dataset holds (staged ZIPs and annotation files, images under its prefix) in the
    background: a project with its labels, tasks and the annotations. Poll the operation."""
    from chalicelib.api.operations import operation_out

    operation = services().datasets.start_import(identity, dataset_id, body.chunk_size)
    return ok(operation_out(operation), f"Import of dataset '{dataset_id}' started", 202)


# Deletion -----------------------------------------------------------------------------------------


@endpoint(bp, f"{ONE}/deletion-impact", response=DeletionImpactOut)
def dataset_deletion_impact(dataset_id, identity):
    """What deleting the dataset would touch: images, annotations and versions, every project using its
    images (its own is deleted, others lose images), tasks, jobs, exports holding them, bytes."""
    impact = services().dataset_deletion.impact(identity, dataset_id)
    return ok(DeletionImpactOut.model_validate(impact), f"Deleting '{impact['dataset_name']}' touches "
              f"{impact['images']} image(s) in {len(impact['projects'])} project(s)")


@endpoint(bp, ONE, "DELETE", body=DeleteDatasetBody, response=OperationOut, status=202)
def delete_dataset(dataset_id, identity, body: DeleteDatasetBody):
    """Delete a dataset: hidden at once everywhere (restorable for the retention window), backed up
    first when asked, purged after the window or now with `purge`. Poll the operation: its result is
    the deletion summary."""
    from chalicelib.api.operations import operation_out

    operation = services().dataset_deletion.delete(identity, dataset_id, body.confirm_dataset_name,
                                                   body.create_backup, body.force_delete, body.purge)
    then = "its purge follows" if body.purge else "restorable until it is purged"
    return ok(operation_out(operation), f"Dataset '{dataset_id}' deleted; {then}", 202)


@endpoint(bp, f"{ONE}/restore", "POST", response=DatasetDetailOut)
def restore_dataset(dataset_id, identity):
    """Bring a deleted dataset back exactly as it was (until its purge starts)."""
    dataset = services().dataset_deletion.restore(identity, dataset_id)
    return ok(detail_out(dataset), f"Dataset '{dataset.name}' restored")


@endpoint(bp, f"{ONE}/purge", "POST", response=OperationOut, status=202)
def purge_dataset(dataset_id, identity):
    """Purge a deleted dataset now instead of after the retention window (or run a failed purge again)."""
    from chalicelib.api.operations import operation_out

    operation = services().dataset_deletion.purge_now(identity, dataset_id)
    return ok(operation_out(operation), f"Purge of dataset '{dataset_id}' started", 202)


@endpoint(bp, f"{BASE}/bulk-delete", "POST", body=BulkDeleteBody, response=list[BulkDeleteResultOut])
def bulk_delete_datasets(identity, body: BulkDeleteBody):
    """Delete several datasets (their names need no typing: `confirm: true`); each gets its own answer."""
    results = services().dataset_deletion.bulk_delete(identity, body.dataset_ids, body.confirm, body.create_backup,
                                                      body.force_delete, body.purge)
    accepted = sum(1 for result in results if result["status"] == "accepted")
    return ok([BulkDeleteResultOut.model_validate(result) for result in results],
              f"{accepted} of {len(results)} dataset(s) deleted")

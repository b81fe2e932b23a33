"""Deleting a dataset safely: impact, confirmation, backup, soft delete with restore, purge, audit.

The lifecycle is `active → deleted → purging → purged`:
- `DELETE /datasets/{id}` checks who asks (the owner or an administrator), the state (409 unless
  active and not importing), the confirmation (the dataset's exact name, else 400 naming
  `confirm_dataset_name`) and the projects its images are used by (one the caller cannot manage
  needs an administrator's `force_delete`). Then, in the request, the soft delete: one transaction
  that marks the dataset deleted and hides its images everywhere (services/trash.py) — the same
  few writes at ten images or a million, so it is never a purge in disguise. It answers 202 with
  the operation of the `delete-dataset` state machine (infra/statemachines/delete-dataset.asl.json):
  *backup* (when asked: one ZIP, services/dataset_backup.py), *deleted* (the result; the purge
  right away when `purge` was asked), and the purge's steps (services/dataset_purge.py).
- `POST …/restore` brings it back exactly as it was until its purge starts: nothing was
  changed but the state and the trash.
- After the window the retention sweep (a schedule, `purge_expired`; locally the same call with
  an injected time) starts the purge; the owner may purge at once (`POST …/purge`).
- A deletion whose backup fails is undone (the dataset restored: the caller asked for a backup
  before anything is lost); a purge that fails leaves the dataset `purging`, and `POST …/purge`
  runs it again from its recorded plan.
Every change is in the dataset's audit log (created, uploaded, deleted, backup_created,
restored, purged), which the purge keeps.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Callable

from chalicelib.clock import utcnow
from chalicelib.config import Settings
from chalicelib.errors import BadRequestError, ConflictError, ForbiddenError, PixelpoolError
from chalicelib.ids import new_id
from chalicelib.services.access import grant, Grant
from chalicelib.services.dataset_purge import DatasetPurge
from chalicelib.services.datasets import deletion_links, managed_dataset
from chalicelib.services.operations import caught_message
from chalicelib.store.datasets import (ACTIVE, DELETED, IMPORTING, PURGED, PURGING, Dataset, DatasetRepository,
                                       inactive_error)
from chalicelib.store.objects import Bucket
from chalicelib.store.operations import COMPLETED, Operation, OperationRepository
from chalicelib.store.projects import ProjectRepository

if TYPE_CHECKING:
    from chalicelib.services.access import Access
    from chalicelib.services.activity import ActivityService
    from chalicelib.services.dataset_backup import DatasetBackupService
    from chalicelib.services.identity import Identity
    from chalicelib.services.operations import WorkflowStarter

DELETE, PURGE = "delete_dataset", "purge_dataset"
REGISTRY_CHUNK = 1_000_000  # progress chunks: projects by their place in the plan, then these two
LINK_SECONDS = 3600


class DatasetDeletionService:
    def __init__(self, settings: Settings, access: "Access", datasets: DatasetRepository,
                 records: OperationRepository, projects: ProjectRepository, purge: DatasetPurge,
                 backup: Callable[[], "DatasetBackupService"], documents: Bucket, cache: Bucket,
                 activity: "ActivityService",
                 start_workflow: "WorkflowStarter", execution_running: Callable[[str, str], bool]) -> None:
        self._settings = settings
        self._access = access
        self._datasets = datasets
        self._records = records
        self._projects = projects
        self._purge = purge
        self._backup = backup
        self._documents = documents
        self._cache = cache
        self._activity = activity
        self._start_workflow = start_workflow
        self._execution_running = execution_running

    # API side -------------------------------------------------------------------------------------

    def impact(self, actor: "Identity", dataset_id: str) -> dict[str, Any]:
        dataset = self._owned(actor, dataset_id)
        if dataset.state == PURGED:
            raise inactive_error(dataset)
        impact = self._purge.impact(dataset)
        blocked = self._unmanaged(actor, impact["projects"])
        return {"dataset_id": dataset.id, "dataset_name": dataset.name, "state": dataset.state, **impact,
                "needs_force_delete": bool(blocked),
                "retention_days": self._settings.dataset_retention_days}

    def delete(self, actor: "Identity", dataset_id: str, confirm_name: str, create_backup: bool, force: bool,
               purge: bool) -> Operation:
        """Soft delete now, then the workflow (backup, result, purge when asked): 202."""
        dataset = self._owned(actor, dataset_id)
        if dataset.state != ACTIVE or dataset.status == IMPORTING:
            raise inactive_error(dataset)
        self._check(actor, dataset, confirm_name, force)
        return self._delete(actor, dataset, create_backup, force, purge)

    def bulk_delete(self, actor: "Identity", dataset_ids: list[str], confirm: bool, create_backup: bool,
                    force: bool, purge: bool) -> list[dict[str, Any]]:
        """Delete several datasets; each one's own answer (an operation, or the error it met)."""
        self._access.require_global(actor, "datasets.manage", actor.sub, what="managing datasets")
        if not confirm:
            raise BadRequestError("confirm: must be true to delete datasets in bulk",
                                  [{"field": "confirm", "location": "body", "message": "not true",
                                    "type": "value_error"}])
        results: list[dict[str, Any]] = []
        for dataset_id in dict.fromkeys(dataset_ids):
            try:
                dataset = self._owned(actor, dataset_id)
                if dataset.state != ACTIVE or dataset.status == IMPORTING:
                    raise inactive_error(dataset)
                self._check(actor, dataset, dataset.name, force)
                operation = self._delete(actor, dataset, create_backup, force, purge)
                results.append({"dataset_id": dataset_id, "status": "accepted", "operation_id": operation.id})
            except PixelpoolError as exc:
                results.append({"dataset_id": dataset_id, "status": "refused", "error": exc.code,
                                "message": exc.message})
        return results

    def restore(self, actor: "Identity", dataset_id: str) -> Dataset:
        dataset = self._owned(actor, dataset_id)  # restorable until the purge starts (the sweep runs after the window)
        restored = self._datasets.restore(dataset_id, utcnow())
        self._activity.audit(actor, dataset_id, "restored", summary=f'Restored dataset "{dataset.name}"',
                             details={"deleted_at": dataset.deleted_at.isoformat() if dataset.deleted_at else None})
        return restored

    def purge_now(self, actor: "Identity", dataset_id: str) -> Operation:
        """Purge a deleted dataset at once (or run a failed purge again): 202."""
        dataset = self._owned(actor, dataset_id)
        if dataset.state == PURGING:
            previous = dataset.deletion.get("purge_operation_id")
            if previous and self._execution_running(self._settings.delete_state_machine, f"purge-{previous}"):
                raise inactive_error(dataset)
        elif dataset.state != DELETED:
            raise inactive_error(dataset)
        return self._start_purge(actor, dataset)

    def purge_expired(self, now: datetime | None = None) -> list[str]:
        """The retention sweep: start the purge of every dataset deleted longer ago than the window."""
        now = now or utcnow()
        started = []
        for dataset in self._datasets.deleted():
            if dataset.state == DELETED and dataset.deleted_at and now >= self._expiry(dataset):
                started.append(self._start_purge(None, dataset, swept=True).id)
        return started

    # Steps ----------------------------------------------------------------------------------------

    def backup_prepare(self, operation_id: str) -> dict[str, Any]:
        dataset = self._of(operation_id)
        project_ids = sorted(project["project_id"] for project in self._purge.projects(dataset))
        return self._backup().prepare(operation_id, dataset.id, project_ids)

    def backup_build(self, operation_id: str, shard: int) -> None:
        self._backup().build(operation_id, self._of(operation_id).id, shard)

    def backup_assemble(self, operation_id: str, shards: list[int]) -> dict[str, Any]:
        dataset = self._of(operation_id)
        built = self._backup().assemble(operation_id, dataset.id, shards)
        first = dataset.deletion.get("backup_created_at")
        at = datetime.fromisoformat(first) if first else utcnow()
        self._datasets.record_deletion(dataset.id, {"backup_key": built["key"], "backup_size": built["size"],
                                                    "backup_created_at": at.isoformat()})
        self._activity.audit(self._requester(operation_id), dataset.id, "backup_created",
                             once=(f"{operation_id}-backup", at),
                             summary=f"Backup of \"{dataset.name}\": {built['images']} image(s), "
                                     f"{built.get('annotations', 0)} annotation(s), {built['size']} bytes",
                             details={"backup_path": built["key"], **{k: v for k, v in built.items() if k != "key"}})
        return {"backup_key": built["key"]}

    def deleted(self, operation_id: str) -> dict[str, Any]:
        """The soft delete is done (and the backup, if asked): the operation's result, unless the
        purge follows at once. Returns whether to purge."""
        operation = self._records.get(operation_id)
        dataset = self._datasets.get(operation.params["dataset_id"])
        if operation.params.get("purge"):
            return {"purge": True}
        if operation.status != COMPLETED:
            impact = self._purge.impact(dataset)
            self._records.finish(operation_id, self._response(dataset, {
                "images_deleted": impact["images"], "annotations_deleted": impact["annotations"],
                "versions_deleted": impact["annotation_versions"],
                "projects_deleted": sum(1 for project in impact["projects"] if project["own"]),
                "storage_bytes_freed": 0, "restorable_until": self._expiry(dataset).isoformat()}), None)
        return {"purge": False}

    def purge_plan(self, operation_id: str) -> dict[str, Any]:
        dataset = self._of(operation_id)
        # Deleted → purging (a no-op when this operation purges it already); a dataset restored
        # meanwhile refuses (409), and nothing is removed.
        self._datasets.begin_purge(dataset.id, operation_id)
        plan = self._purge.plan(dataset.id)
        self._records.start(operation_id, len(plan["projects"]) + 2)
        return {"projects": plan["projects"]}

    # Progress counts the projects, then the registry and the objects (each once, however often it runs).

    def purge_project(self, operation_id: str, project_id: str, own: bool) -> None:
        dataset = self._of(operation_id)
        self._purge.project(dataset.id, project_id, own)
        self._records.advance(operation_id, self._purge.position(dataset.id, project_id), 1)

    def purge_registry(self, operation_id: str) -> None:
        dataset = self._of(operation_id)
        counts = self._purge.registry(dataset.id)
        self._datasets.record_deletion(dataset.id, {"registry": counts})
        self._records.advance(operation_id, REGISTRY_CHUNK, 1)

    def purge_objects(self, operation_id: str) -> dict[str, bool]:
        """One run of the objects step; `more`: the machine runs it again."""
        dataset = self._of(operation_id)
        counts = self._purge.objects(dataset.id, operation_id)
        if counts.get("more"):
            return {"more": True}
        self._datasets.record_deletion(dataset.id, {"objects": counts, "manifest_key": counts["manifest_key"]})
        self._records.advance(operation_id, REGISTRY_CHUNK + 1, 1)
        return {"more": False}

    def purge_finish(self, operation_id: str) -> dict[str, Any]:
        dataset = self._of(operation_id)
        projects = self._purge.project_counts(dataset.id)
        registry, objects = dataset.deletion.get("registry", {}), dataset.deletion.get("objects", {})
        summary = {
            "images_deleted": registry.get("records", 0),
            "annotations_deleted": self._purge.planned(dataset.id).get("annotations", 0),
            "annotation_items_deleted": sum(counts.get("annotation_items", 0) for counts in projects),
            "versions_deleted": sum(counts.get("versions", 0) for counts in projects),
            "projects_deleted": sum(counts.get("projects", 0) for counts in projects),
            "pool_entries_deleted": sum(counts.get("pool_entries", 0) for counts in projects),
            "job_images_deleted": sum(counts.get("job_images", 0) for counts in projects),
            "tag_links_deleted": registry.get("tag_links", 0),
            "s3_objects_deleted": objects.get("objects", 0) + objects.get("thumbnails", 0)
            + objects.get("export_artifacts", 0) + objects.get("staged_versions", 0),
            "storage_bytes_freed": objects.get("bytes", 0),
        }
        purged = self._datasets.end_purge(dataset.id, utcnow(), summary)
        if dataset.deletion.get("error"):
            self._datasets.record_deletion(dataset.id, {"error": None})  # an earlier attempt's failure
        self._activity.audit(self._requester(operation_id), dataset.id, "purged",
                             once=(f"{operation_id}-purged", purged.purged_at),
                             summary=f'Purged dataset "{dataset.name}": {summary["images_deleted"]} image(s), '
                                     f'{summary["storage_bytes_freed"]} bytes',
                             details={**summary, "manifest_key": objects.get("manifest_key")})
        operation = self._records.get(operation_id)
        if operation.status != COMPLETED:
            self._records.finish(operation_id, self._response(purged, summary), None)
        self._purge.done(dataset.id)
        return {"dataset_id": dataset.id}

    def fail(self, operation_id: str, error: dict[str, Any]) -> dict[str, Any]:
        """A failed deletion before any purge is undone (the dataset restored, so nothing it asked
        for — a backup — is skipped); a failed purge leaves the dataset `purging` to be run again."""
        from chalicelib.services.dataset_backup import backup_key  # the steps' import, not the API's

        operation = self._records.get(operation_id)
        message = caught_message(error, "the deletion failed")
        dataset = self._datasets.get(operation.params["dataset_id"])
        if dataset.state == PURGED and dataset.deletion.get("purge_operation_id") == operation_id:
            # Only the last step's answer was lost: the purge is whole, and the operation says so.
            return self.purge_finish(operation_id)
        if operation.kind == DELETE and dataset.state == DELETED:
            # Undone whole: the dataset back, and what its backup had written so far removed.
            self._cache.delete_prefix(f"operations/{operation_id}/backup/")
            self._documents.delete_versions(backup_key(dataset.id, operation_id))
            self._datasets.record_deletion(dataset.id, {"backup_key": None, "backup_size": None,
                                                        "backup_created_at": None})
            self._datasets.restore(dataset.id, utcnow())
            self._activity.audit(None, dataset.id, "restored", once=(f"{operation_id}-undone", utcnow()),
                                 summary=f'Deletion of "{dataset.name}" undone: {message[:200]}',
                                 details={"reason": "the deletion failed", "error": message[:2000]})
        self._datasets.record_deletion(dataset.id, {"error": message[:2000]})
        if operation.status != "failed":
            self._records.fail(operation_id, message)
        return {"error": message}

    # Helpers --------------------------------------------------------------------------------------

    def _check(self, actor: "Identity", dataset: Dataset, confirm_name: str, force: bool) -> None:
        if confirm_name != dataset.name:
            raise BadRequestError(
                f"confirm_dataset_name: '{confirm_name}' does not match the dataset's name; type it exactly",
                [{"field": "confirm_dataset_name", "location": "body", "message": "does not match the name",
                  "type": "value_error"}])
        if force and not self._access.may_global(actor, "datasets.force_delete"):
            raise ForbiddenError("force_delete: only administrators may force a deletion",
                                 [{"field": "force_delete", "location": "body", "message": "administrators only",
                                   "type": "value_error"}])
        if not force:
            blocked = self._unmanaged(actor, self._purge.projects(dataset))
            if blocked:
                raise ConflictError(
                    f"The dataset's images are used by project(s) you do not manage: "
                    f"{', '.join(project['name'] for project in blocked[:5])}; an administrator can delete it "
                    "with force_delete", [{"project_id": project["project_id"], "name": project["name"]}
                                          for project in blocked])

    def _unmanaged(self, actor: "Identity", projects: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Affected projects the caller may not change (only administrators may force those)."""
        if actor.is_admin:
            return []
        blocked = []
        for project in projects:
            member = self._projects.member(project["project_id"], actor.sub)
            if member is None or grant(member.role, "project.update") is not Grant.ANY:
                blocked.append(project)
        return blocked

    def _delete(self, actor: "Identity", dataset: Dataset, create_backup: bool, force: bool,
                purge: bool) -> Operation:
        operation_id = new_id()
        now = utcnow()
        self._datasets.soft_delete(dataset.id, actor.sub, now, {
            "operation_id": operation_id, "backup": create_backup, "purge": purge, "force": force})
        self._activity.audit(actor, dataset.id, "deleted", once=(f"{operation_id}-deleted", now),
                             summary=f'Deleted dataset "{dataset.name}"' + (" and purged it" if purge else ""),
                             details={"backup": create_backup, "purge": purge, "force_delete": force,
                                      "restorable_until": None if purge else
                                      (now + timedelta(days=self._settings.dataset_retention_days)).isoformat()})
        operation = self._records.create(operation_id, DELETE, {
            "dataset_id": dataset.id, "backup": create_backup, "purge": purge}, actor.sub)
        try:
            self._start_workflow(self._settings.delete_state_machine, f"delete-{operation_id}",
                                 {"operation_id": operation_id, "mode": "delete", "backup": create_backup})
        except Exception:
            self._datasets.restore(dataset.id, utcnow())
            self._records.fail(operation_id, "the deletion could not be started")
            raise
        return operation

    def _start_purge(self, actor: "Identity | None", dataset: Dataset, swept: bool = False) -> Operation:
        operation_id = new_id()
        # The sweep's purge is the owner's to follow, as the deletion was.
        operation = self._records.create(operation_id, PURGE, {"dataset_id": dataset.id, "swept": swept},
                                         actor.sub if actor else dataset.owner_id)
        self._datasets.begin_purge(dataset.id, operation_id, takeover=dataset.state == PURGING)
        self._start_workflow(self._settings.delete_state_machine, f"purge-{operation_id}",
                             {"operation_id": operation_id, "mode": "purge", "backup": False})
        return operation

    def _response(self, dataset: Dataset, summary: dict[str, Any]) -> dict[str, Any]:
        """The seed's DeleteDatasetResponse (the keys deleted are a manifest in S3, linked)."""
        links = deletion_links(self._documents, self._datasets.get(dataset.id).deletion, LINK_SECONDS)
        return {"dataset_id": dataset.id, "dataset_name": dataset.name,
                "deleted_at": dataset.deleted_at.isoformat() if dataset.deleted_at else None,
                "state": dataset.state, "backup_path": dataset.deletion.get("backup_key"),
                "backup_url": links["backup_url"], "deletion_summary": {
                    **summary, "s3_keys_deleted_manifest": dataset.deletion.get("manifest_key"),
                    "s3_keys_deleted_url": links["manifest_url"]}}

    def _expiry(self, dataset: Dataset) -> datetime:
        return dataset.deleted_at + timedelta(days=self._settings.dataset_retention_days)

    def _requester(self, operation_id: str) -> "Identity | None":
        """Who asked for the operation (the retention sweep's purge: nobody, recorded as the system)."""
        from chalicelib.services.identity import Identity

        operation = self._records.get(operation_id)
        swept = operation.kind == PURGE and operation.params.get("swept")
        return None if swept or not operation.created_by else Identity(sub=operation.created_by)

    def _of(self, operation_id: str) -> Dataset:
        return self._datasets.get(self._records.get(operation_id).params["dataset_id"])

    def _owned(self, actor: "Identity", dataset_id: str) -> Dataset:
        return managed_dataset(self._access, self._datasets, actor, dataset_id)

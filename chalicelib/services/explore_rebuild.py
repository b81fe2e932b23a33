"""Rebuilding Explore's index from DynamoDB, the only source of truth (administrators).

`POST /api/v1/admin/explore-index/rebuild {project_id?}` starts an operation on the `index` state
machine with nothing to register; its last step hands it here (`complete`), and each project's
index is built again from its tables and its snapshot written — without `project_id`, every
project's and the registry's, after noting every completed ML analysis on its image. Running it again gives the same
index: every step reads only the source of truth.
"""
from __future__ import annotations

from typing import Any

from chalicelib.services.access import Access
from chalicelib.services.explore_index import IndexedExplore
from chalicelib.services.identity import Identity
from chalicelib.services.operations import OperationService
from chalicelib.services.registry_index import REGISTRY, IndexedRegistry
from chalicelib.services.share import Selection
from chalicelib.store.analyses import AnalysisRepository
from chalicelib.store.images import ImageRepository
from chalicelib.store.operations import Operation
from chalicelib.store.projects import ProjectRepository

EXPLORE_REBUILD = "explore_index_rebuild"


class ExploreRebuild:
    def __init__(self, access: Access, operations: OperationService, index: IndexedExplore,
                 registry: IndexedRegistry, projects: ProjectRepository, analyses: AnalysisRepository,
                 images: ImageRepository) -> None:
        self._analyses = analyses
        self._images = images
        self._registry = registry
        self._access = access
        self._operations = operations
        self._index = index
        self._projects = projects

    def start(self, actor: Identity, project_id: str | None) -> Operation:
        self._access.require_global(actor, "explore_index.rebuild", what="rebuilding the Explore index")
        if project_id is not None:
            self._projects.get(project_id)  # 404 for a project that does not exist
        return self._operations.start(actor, EXPLORE_REBUILD, {"project_id": project_id}, Selection(keys=[], pending=[]))

    # OperationFinisher --------------------------------------------------------------------------

    def complete(self, operation: Operation, keys: list[str], failed: list[dict[str, str]]) -> dict[str, Any]:
        project_id = operation.params.get("project_id")
        project_ids = [project_id] if project_id else [project.id for project in self._projects.all()]
        # Every completed ML analysis noted on its image (where Explore's prediction conditions and
        # promote find it), also those completed before images carried them: a whole rebuild is how
        # a deployment upgraded from then catches up.
        noted = None if project_id else self._images.note_analyses(self._analyses.completed())
        images = 0
        for one in project_ids:
            images += self._index.rebuild(one).size()
            if not self._projects.exists(one):  # deleted meanwhile: its snapshot must not outlive it
                self._index.purge_project(one)
        if project_id:
            return {"total_projects": len(project_ids), "total_images": images}
        registered = self._registry.rebuild(REGISTRY).size()
        return {"total_projects": len(project_ids), "total_images": images, "registry_images": registered,
                "images_with_analyses": noted}

    def abandon(self, operation: Operation) -> None:
        """Nothing to undo: a half-done rebuild leaves each project's index and snapshot whole."""

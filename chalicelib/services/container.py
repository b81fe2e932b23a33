"""Lazily built services, one per process (a warm Lambda reuses them)."""
from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from chalicelib.config import get_settings
from chalicelib.services.activity import ActivityService
from chalicelib.services.tags import TagService
from chalicelib.services.users import UserService

if TYPE_CHECKING:
    from chalicelib.services.access import Access
    from chalicelib.services.annotations import AnnotationService
    from chalicelib.services.explore import ExploreService
    from chalicelib.services.exports import ExportService
    from chalicelib.services.images import ImageService
    from chalicelib.services.jobs import JobService
    from chalicelib.services.pool import PoolService
    from chalicelib.services.projects import ProjectService
    from chalicelib.services.saved_filters import SavedFilterService
    from chalicelib.services.tasks import TaskService
    from chalicelib.services.indexing import IndexingService
    from chalicelib.services.registry import RegistryService
    from chalicelib.services.share import ShareService
    from chalicelib.services.tagging import TaggingService


@lru_cache(maxsize=1)
def activity() -> ActivityService:
    from chalicelib.store.activity import ActivityRepository

    return ActivityService(ActivityRepository())


@lru_cache(maxsize=1)
def users() -> UserService:
    from chalicelib.store.users import UserRepository

    return UserService(UserRepository())


@lru_cache(maxsize=1)
def tags() -> TagService:
    from chalicelib.store.image_tags import ImageTagRepository
    from chalicelib.store.tags import TagRepository

    return TagService(TagRepository(), activity(), ImageTagRepository())


@lru_cache(maxsize=1)
def _buckets():
    from chalicelib.store.objects import Bucket

    settings = get_settings()
    return Bucket(settings.share_bucket), Bucket(settings.cache_bucket)


@lru_cache(maxsize=1)
def registry() -> "RegistryService":
    from chalicelib.services.registry import RegistryService
    from chalicelib.store.image_tags import ImageTagRepository
    from chalicelib.store.images import ImageRepository

    from chalicelib.store.pool import PoolRepository

    share, cache = _buckets()
    return RegistryService(get_settings(), ImageRepository(), ImageTagRepository(), share, cache, PoolRepository())


@lru_cache(maxsize=1)
def share() -> "ShareService":
    from chalicelib.services.share import ShareService
    from chalicelib.store.images import ImageRepository

    return ShareService(get_settings(), _buckets()[0], ImageRepository())


@lru_cache(maxsize=1)
def images() -> "ImageService":
    from chalicelib.services.images import ImageService
    from chalicelib.store.images import ImageRepository
    from chalicelib.store.tags import TagRepository

    share_bucket, cache = _buckets()
    return ImageService(get_settings(), ImageRepository(), TagRepository(), share_bucket, cache)


@lru_cache(maxsize=1)
def tagging() -> "TaggingService":
    from chalicelib.services.tagging import TaggingService
    from chalicelib.store.image_tags import ImageTagRepository
    from chalicelib.store.images import ImageRepository
    from chalicelib.store.tags import TagRepository

    return TaggingService(ImageRepository(), TagRepository(), ImageTagRepository(), activity())


@lru_cache(maxsize=1)
def indexing() -> "IndexingService":
    from chalicelib.services.indexing import IndexingService
    from chalicelib.store.operations import OperationRepository

    from chalicelib.services.tasks import CREATE_TASK

    share_bucket, cache = _buckets()
    # Resolved when a step runs, not now: the task service itself starts indexing operations.
    finishers = {CREATE_TASK: lambda operation, keys, failed: tasks().complete(operation, keys, failed)}
    abandoners = {CREATE_TASK: lambda operation: tasks().abandon(operation)}
    return IndexingService(get_settings(), registry(), share(), OperationRepository(), share_bucket, cache, activity(),
                           finishers, abandoners)


@lru_cache(maxsize=1)
def _documents():
    from chalicelib.store.objects import Bucket

    return Bucket(get_settings().datasets_bucket)


@lru_cache(maxsize=1)
def access() -> "Access":
    from chalicelib.services.access import Access
    from chalicelib.store.projects import ProjectRepository

    return Access(ProjectRepository())


@lru_cache(maxsize=1)
def projects() -> "ProjectService":
    from chalicelib.services.projects import ProjectService
    from chalicelib.store.projects import ProjectRepository
    from chalicelib.store.users import UserRepository

    return ProjectService(access(), ProjectRepository(), UserRepository(), activity(),
                          purge=lambda project_id: (tasks().purge_project(project_id),
                                                    exports().purge_project(project_id)))


@lru_cache(maxsize=1)
def pool() -> "PoolService":
    from chalicelib.services.pool import PoolService
    from chalicelib.store.images import ImageRepository
    from chalicelib.store.jobs import JobRepository
    from chalicelib.store.pool import PoolRepository

    return PoolService(access(), PoolRepository(), ImageRepository(), JobRepository(), activity())


@lru_cache(maxsize=1)
def explore() -> "ExploreService":
    from chalicelib.services.explore import ExploreService, PoolQuery
    from chalicelib.store.image_tags import ImageTagRepository
    from chalicelib.store.jobs import JobRepository
    from chalicelib.store.pool import PoolRepository
    from chalicelib.store.tags import TagRepository
    from chalicelib.store.tasks import TaskRepository

    index = PoolQuery(PoolRepository(), TaskRepository(), JobRepository(), ImageTagRepository(), TagRepository())
    return ExploreService(access(), index, images())


@lru_cache(maxsize=1)
def tasks() -> "TaskService":
    from chalicelib.services.tasks import TaskService
    from chalicelib.store.annotations import AnnotationRepository
    from chalicelib.store.images import ImageRepository
    from chalicelib.store.jobs import JobRepository
    from chalicelib.store.pool import PoolRepository
    from chalicelib.store.projects import ProjectRepository
    from chalicelib.store.tasks import TaskRepository

    return TaskService(get_settings(), access(), ProjectRepository(), TaskRepository(), pool(), PoolRepository(),
                       JobRepository(), AnnotationRepository(), ImageRepository(), share(), registry(), explore(),
                       activity(), _documents(), start_operation=indexing().start_selection)


@lru_cache(maxsize=1)
def jobs() -> "JobService":
    from chalicelib.services.jobs import JobService
    from chalicelib.store.jobs import JobRepository
    from chalicelib.store.projects import ProjectRepository
    from chalicelib.store.tasks import TaskRepository

    return JobService(access(), ProjectRepository(), TaskRepository(), JobRepository(), images(), activity())


@lru_cache(maxsize=1)
def annotations() -> "AnnotationService":
    from chalicelib.services.annotations import AnnotationService
    from chalicelib.store.annotations import AnnotationRepository
    from chalicelib.store.images import ImageRepository

    return AnnotationService(jobs(), AnnotationRepository(), ImageRepository(), _documents(), activity())


@lru_cache(maxsize=1)
def saved_filters() -> "SavedFilterService":
    from chalicelib.services.saved_filters import SavedFilterService
    from chalicelib.store.saved_filters import SavedFilterRepository

    return SavedFilterService(access(), SavedFilterRepository(), activity())


@lru_cache(maxsize=1)
def exports() -> "ExportService":
    from chalicelib.services.export_contents import ExportContents
    from chalicelib.services.exports import ExportService
    from chalicelib.store import workflows
    from chalicelib.store.annotations import AnnotationRepository
    from chalicelib.store.exports import ExportRepository
    from chalicelib.store.image_tags import ImageTagRepository
    from chalicelib.store.jobs import JobRepository
    from chalicelib.store.objects import Bucket
    from chalicelib.store.projects import ProjectRepository
    from chalicelib.store.tags import TagRepository
    from chalicelib.store.tasks import TaskRepository

    settings = get_settings()
    share_bucket, _ = _buckets()
    contents = ExportContents(explore(), TaskRepository(), JobRepository(), AnnotationRepository(), TagRepository(),
                              ImageTagRepository(), _documents())
    return ExportService(
        access(), ExportRepository(), ProjectRepository(), contents, saved_filters(), share_bucket,
        Bucket(settings.exports_bucket), activity(),
        start_workflow=lambda name, payload: workflows.start(settings.export_state_machine, name, payload))


FACTORIES = (activity, users, tags, _buckets, registry, share, images, tagging, indexing, _documents, access,
             projects, pool, explore, tasks, jobs, annotations, saved_filters, exports)


def reset() -> None:
    """Forget built services (tests that restart the emulator)."""
    for factory in FACTORIES:
        factory.cache_clear()

"""`Services`: every service of one process, built once at the edge and handed to what needs it.

Routes, event handlers and steps ask `services()` for the process's object; each service is
built on first use (a cold Lambda builds only what its route needs) and kept while the container
is warm. Nothing below the edge looks services up: each receives its collaborators in its
constructor, and cycles are cut by small ports (a workflow starter, project purgers, operation
finishers) rather than by lambdas that reach back into the container.

A test overrides a dependency in one line and gets the rest built around it:

    services().override(start_workflow=recorder)      # the process's object, as routes see it
    TaskService(..., start_operation=fake)            # or a service alone, with small fakes
"""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Callable, Generic, TypeVar

from chalicelib.config import Settings, get_settings

if TYPE_CHECKING:
    from chalicelib.services.access import Access
    from chalicelib.services.activity import ActivityService
    from chalicelib.services.analyses import AnalysisService
    from chalicelib.services.annotations import AnnotationService
    from chalicelib.services.comments import CommentService
    from chalicelib.services.dataset_import import DatasetImportService
    from chalicelib.services.datasets import DatasetService
    from chalicelib.services.explore import ExploreIndex, ExploreService
    from chalicelib.services.explore_index import IndexedExplore
    from chalicelib.services.explore_rebuild import ExploreRebuild
    from chalicelib.services.exports import ExportService
    from chalicelib.services.images import ImageService
    from chalicelib.services.indexing import IndexingService
    from chalicelib.services.invitations import InvitationService
    from chalicelib.services.jobs import JobService
    from chalicelib.services.operations import OperationService, WorkflowStarter
    from chalicelib.services.pipelines import PipelineAuth
    from chalicelib.services.pool import PoolService
    from chalicelib.services.projects import ProjectService
    from chalicelib.services.promotions import PromotionService
    from chalicelib.services.kept_index import TagList
    from chalicelib.services.registry_index import IndexedRegistry
    from chalicelib.services.registry import RegistryService
    from chalicelib.services.saved_filters import SavedFilterService
    from chalicelib.services.share import ShareService
    from chalicelib.services.split_leaks import SplitLeakService
    from chalicelib.services.tagging import TaggingService
    from chalicelib.services.tags import TagService
    from chalicelib.services.trash import Trash
    from chalicelib.services.dataset_backup import DatasetBackupService
    from chalicelib.services.dataset_deletion import DatasetDeletionService
    from chalicelib.services.tasks import TaskService
    from chalicelib.services.users import UserService
    from chalicelib.store.objects import Bucket

T = TypeVar("T")


class provided(Generic[T]):
    """A dependency of `Services`: built by `build(services)` on first use, unless overridden."""

    def __init__(self, build: Callable[["Services"], T]) -> None:
        self.build = build
        self.__doc__ = build.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, services: "Services | None", owner: type) -> T:
        if services is None:
            return self  # type: ignore[return-value]
        return services._provide(self.name, self.build)


class Services:
    """The process's services and the ports they share, each built once, on first use."""

    def __init__(self, settings: Settings | None = None, **overrides: Any) -> None:
        self._lock = threading.RLock()
        self._built: dict[str, Any] = {}
        self._overrides: dict[str, Any] = {}
        if settings is not None:
            overrides["settings"] = settings
        self.override(**overrides)

    def _provide(self, name: str, build: Callable[["Services"], Any]) -> Any:
        if name in self._overrides:
            return self._overrides[name]
        try:
            return self._built[name]
        except KeyError:
            pass
        with self._lock:
            if name not in self._built:
                self._built[name] = build(self)
            return self._built[name]

    def override(self, **dependencies: Any) -> "Services":
        """Use these objects for the named dependencies; everything built so far is built again
        around them (so a service that held the old one does not keep it)."""
        unknown = sorted(name for name in dependencies if not isinstance(getattr(type(self), name, None), provided))
        if unknown:
            raise AttributeError(f"Services has no dependency named {', '.join(unknown)}")
        with self._lock:
            self._overrides.update(dependencies)
            self._built.clear()
        return self

    def reset(self) -> None:
        """Forget everything built and every override (a test that restarts the emulator)."""
        with self._lock:
            self._overrides.clear()
            self._built.clear()

    # Configuration and ports ---------------------------------------------------------------------

    @provided
    def settings(self) -> Settings:
        return get_settings()

    @provided
    def start_workflow(self) -> "WorkflowStarter":
        """Starts a Step Functions execution: (state machine ARN, execution name, input) -> ARN."""
        from chalicelib.store import workflows

        return workflows.start

    @provided
    def share_bucket(self) -> "Bucket":
        from chalicelib.store.objects import Bucket

        return Bucket(self.settings.share_bucket)

    @provided
    def cache_bucket(self) -> "Bucket":
        from chalicelib.store.objects import Bucket

        return Bucket(self.settings.cache_bucket)

    @provided
    def documents_bucket(self) -> "Bucket":
        """Large documents (annotation versions) beside the datasets."""
        from chalicelib.store.objects import Bucket

        return Bucket(self.settings.datasets_bucket)

    @provided
    def exports_bucket(self) -> "Bucket":
        from chalicelib.store.objects import Bucket

        return Bucket(self.settings.exports_bucket)

    # Services ------------------------------------------------------------------------------------

    @provided
    def activity(self) -> "ActivityService":
        from chalicelib.services.activity import ActivityService
        from chalicelib.store.activity import ActivityRepository

        return ActivityService(ActivityRepository())

    @provided
    def invitations(self) -> "InvitationService":
        from chalicelib.services.invitations import InvitationService
        from chalicelib.store.projects import ProjectRepository

        return InvitationService(ProjectRepository(), self.activity)

    @provided
    def users(self) -> "UserService":
        from chalicelib.services.users import UserService
        from chalicelib.store.users import UserRepository

        return UserService(UserRepository(), self.invitations)

    @provided
    def tags(self) -> "TagService":
        from chalicelib.services.tags import TagService
        from chalicelib.store.image_tags import ImageTagRepository
        from chalicelib.store.tags import TagRepository

        return TagService(TagRepository(), self.activity, ImageTagRepository(), self.access)

    @provided
    def registry(self) -> "RegistryService":
        from chalicelib.services.registry import RegistryService
        from chalicelib.store.image_tags import ImageTagRepository
        from chalicelib.store.images import ImageRepository
        from chalicelib.store.pool import PoolRepository

        return RegistryService(self.settings, ImageRepository(), ImageTagRepository(), self.share_bucket,
                               self.cache_bucket, PoolRepository())

    @provided
    def share(self) -> "ShareService":
        from chalicelib.services.share import ShareService
        from chalicelib.store.images import ImageRepository

        return ShareService(self.settings, self.share_bucket, ImageRepository(), self.access)

    @provided
    def images(self) -> "ImageService":
        from chalicelib.services.images import ImageService
        from chalicelib.store.images import ImageRepository
        from chalicelib.store.tags import TagRepository

        return ImageService(self.settings, ImageRepository(), TagRepository(), self.share_bucket, self.cache_bucket,
                            self.access, self.registry_index, self.trash)

    @provided
    def tagging(self) -> "TaggingService":
        from chalicelib.services.tagging import TaggingService
        from chalicelib.store.image_tags import ImageTagRepository
        from chalicelib.store.images import ImageRepository
        from chalicelib.store.tags import TagRepository

        return TaggingService(ImageRepository(), TagRepository(), ImageTagRepository(), self.activity, self.access)

    @provided
    def operations(self) -> "OperationService":
        from chalicelib.services.operations import OperationService
        from chalicelib.store.operations import OperationRepository

        return OperationService(self.settings, OperationRepository(), self.cache_bucket, self.start_workflow,
                                self.activity, self.access)

    @provided
    def indexing(self) -> "IndexingService":
        from chalicelib.services.indexing import IndexingService
        from chalicelib.services.explore_rebuild import EXPLORE_REBUILD
        from chalicelib.services.tasks import CREATE_TASK
        from chalicelib.store.operations import OperationRepository

        return IndexingService(self.settings, self.registry, self.share, self.operations, OperationRepository(),
                               self.share_bucket, self.cache_bucket, self.activity, self.access,
                               finishers={CREATE_TASK: self.tasks, EXPLORE_REBUILD: self.explore_rebuild})

    @provided
    def explore_rebuild(self) -> "ExploreRebuild":
        from chalicelib.services.explore_rebuild import ExploreRebuild
        from chalicelib.store.projects import ProjectRepository

        from chalicelib.store.analyses import AnalysisRepository
        from chalicelib.store.images import ImageRepository

        return ExploreRebuild(self.access, self.operations, self.explore_index, self.registry_index,
                              ProjectRepository(), AnalysisRepository(), ImageRepository())

    @provided
    def access(self) -> "Access":
        from chalicelib.services.access import Access
        from chalicelib.store.projects import ProjectRepository

        return Access(ProjectRepository(), self.settings.viewer_group, self.settings.contributor_group)

    @provided
    def projects(self) -> "ProjectService":
        from chalicelib.services.projects import ProjectService
        from chalicelib.store.projects import ProjectRepository
        from chalicelib.store.users import UserRepository

        # Deleting a project purges what other services own in it: its tasks and pool, its exports.
        return ProjectService(self.access, ProjectRepository(), UserRepository(), self.activity, self.invitations,
                              purgers=(self.tasks, self.exports, self.explore_index))

    @provided
    def comments(self) -> "CommentService":
        from chalicelib.services.comments import CommentService
        from chalicelib.store.comments import CommentRepository
        from chalicelib.store.pool import PoolRepository
        from chalicelib.store.projects import ProjectRepository

        return CommentService(self.access, CommentRepository(), PoolRepository(), ProjectRepository(), self.activity)

    @provided
    def pool(self) -> "PoolService":
        from chalicelib.services.pool import PoolService
        from chalicelib.store.images import ImageRepository
        from chalicelib.store.jobs import JobRepository
        from chalicelib.store.pool import PoolRepository

        return PoolService(self.access, PoolRepository(), ImageRepository(), JobRepository(), self.activity, self.trash)

    @provided
    def explore_index(self) -> "IndexedExplore":
        """Explore's query index: per-project in-memory indexes kept current from the change log,
        kept while the container is warm."""
        from chalicelib.services.explore_index import IndexedExplore
        from chalicelib.store.changes import ChangeLog
        from chalicelib.store.images import ImageRepository
        from chalicelib.store.jobs import JobRepository
        from chalicelib.store.pool import PoolRepository
        from chalicelib.store.tasks import TaskRepository

        return IndexedExplore(PoolRepository(), TaskRepository(), JobRepository(), ImageRepository(), ChangeLog(),
                              self.cache_bucket, tag_list=self.tag_list, trash=self.trash)

    @provided
    def datasets(self) -> "DatasetService":
        from chalicelib.services.datasets import DatasetService
        from chalicelib.store.datasets import DatasetRepository

        return DatasetService(self.settings, self.access, DatasetRepository(), self.documents_bucket, self.share,
                              self.dataset_import, self.activity)

    @provided
    def dataset_import(self) -> "DatasetImportService":
        from chalicelib.services.dataset_import import DatasetImportService
        from chalicelib.services.import_files import ImportFiles
        from chalicelib.services.import_project import ImportProject
        from chalicelib.store import workflows
        from chalicelib.store.annotations import AnnotationRepository
        from chalicelib.store.aws import client
        from chalicelib.store.datasets import DatasetRepository
        from chalicelib.store.jobs import JobRepository
        from chalicelib.store.operations import OperationRepository
        from chalicelib.store.projects import ProjectRepository

        files = ImportFiles(self.settings, DatasetRepository(), OperationRepository(), self.documents_bucket,
                            self.share_bucket, self.cache_bucket, client("s3"), self.registry)
        project = ImportProject(DatasetRepository(), OperationRepository(), self.cache_bucket, files, self.registry,
                                ProjectRepository(), self.tasks, JobRepository(), AnnotationRepository(),
                                self.documents_bucket, self.activity)
        return DatasetImportService(self.settings, self.access, DatasetRepository(), OperationRepository(),
                                    self.documents_bucket, self.share_bucket, self.cache_bucket, files, project,
                                    self.registry, self.registry_index, JobRepository(), self.activity,
                                    self.start_workflow, workflows.running)

    @provided
    def dataset_deletion(self) -> "DatasetDeletionService":
        from chalicelib.services.dataset_deletion import DatasetDeletionService
        from chalicelib.services.dataset_purge import DatasetPurge
        from chalicelib.store.analyses import AnalysisRepository
        from chalicelib.store import workflows
        from chalicelib.store.annotations import AnnotationRepository
        from chalicelib.store.datasets import DatasetRepository
        from chalicelib.store.exports import ExportRepository
        from chalicelib.store.image_tags import ImageTagRepository
        from chalicelib.store.images import ImageRepository
        from chalicelib.store.jobs import JobRepository
        from chalicelib.store.operations import OperationRepository
        from chalicelib.store.pool import PoolRepository
        from chalicelib.store.projects import ProjectRepository
        from chalicelib.store.tags import TagRepository
        from chalicelib.store.tasks import TaskRepository

        purge = DatasetPurge(DatasetRepository(), PoolRepository(), ImageRepository(), ImageTagRepository(),
                             TagRepository(), ProjectRepository(), TaskRepository(), JobRepository(),
                             AnnotationRepository(), ExportRepository(), self.share_bucket, self.cache_bucket,
                             self.documents_bucket, self.exports_bucket, self.explore_index, self.registry_index,
                             AnalysisRepository())
        return DatasetDeletionService(self.settings, self.access, DatasetRepository(), OperationRepository(),
                                      ProjectRepository(), purge, lambda: self.dataset_backup, self.documents_bucket,
                                      self.cache_bucket, self.activity, self.start_workflow, workflows.running)

    @provided
    def registry_index(self) -> "IndexedRegistry":
        """The registry's index (list, similar, duplicates), kept current like Explore's."""
        from chalicelib.services.registry_index import IndexedRegistry
        from chalicelib.store.changes import ChangeLog
        from chalicelib.store.images import ImageRepository

        return IndexedRegistry(ImageRepository(), ChangeLog(), self.cache_bucket, self.tag_list, self.trash)

    @provided
    def trash(self) -> "Trash":
        """The deleted datasets whose images every reader hides (services/trash.py)."""
        from chalicelib.services.trash import Trash
        from chalicelib.store.datasets import DatasetRepository

        return Trash(DatasetRepository())

    @provided
    def pipelines(self) -> "PipelineAuth":
        """HMAC authentication of the ML pipelines (its key cache lives as long as the container)."""
        from chalicelib.services.pipelines import PipelineAuth
        from chalicelib.store.pipelines import SignatureRepository, read_keys

        return PipelineAuth(self.settings, SignatureRepository(), read_keys)

    @provided
    def analyses(self) -> "AnalysisService":
        from chalicelib.services.analyses import AnalysisService
        from chalicelib.store.analyses import AnalysisRepository
        from chalicelib.store.idempotency import persistence_layer
        from chalicelib.store.images import ImageRepository

        return AnalysisService(self.settings, AnalysisRepository(), ImageRepository(), self.trash,
                               self.documents_bucket, self.pipelines, persistence_layer(), self.activity,
                               self.explore)

    @provided
    def tag_list(self) -> "TagList":
        """The tag list the indexes hand out, dropped when the tag stream records a tag changed."""
        from chalicelib.services.kept_index import TagList
        from chalicelib.store.tags import TagRepository

        return TagList(TagRepository())

    @provided
    def pool_query(self) -> "ExploreIndex":
        """The same interface answered straight from DynamoDB (no index): the reference the index is
        checked against, and the baseline of bench_explore."""
        from chalicelib.services.explore import PoolQuery
        from chalicelib.store.image_tags import ImageTagRepository
        from chalicelib.store.jobs import JobRepository
        from chalicelib.store.pool import PoolRepository
        from chalicelib.store.tags import TagRepository
        from chalicelib.store.tasks import TaskRepository

        return PoolQuery(PoolRepository(), TaskRepository(), JobRepository(), ImageTagRepository(), TagRepository())

    @provided
    def explore(self) -> "ExploreService":
        from chalicelib.services.explore import ExploreService

        return ExploreService(self.access, self.explore_index, self.images)

    @provided
    def split_leaks(self) -> "SplitLeakService":
        from chalicelib.services.split_leaks import SplitLeakService

        return SplitLeakService(self.access, self.explore_index)

    @provided
    def tasks(self) -> "TaskService":
        from chalicelib.services.tasks import TaskService
        from chalicelib.store.annotations import AnnotationRepository
        from chalicelib.store.images import ImageRepository
        from chalicelib.store.jobs import JobRepository
        from chalicelib.store.pool import PoolRepository
        from chalicelib.store.projects import ProjectRepository
        from chalicelib.store.tasks import TaskRepository

        return TaskService(self.settings, self.access, ProjectRepository(), TaskRepository(), self.pool,
                           PoolRepository(), JobRepository(), AnnotationRepository(), ImageRepository(), self.share,
                           self.registry, self.explore, self.activity, self.documents_bucket, self.saved_filters,
                           start_operation=self.operations.start, trash=self.trash)

    @provided
    def jobs(self) -> "JobService":
        from chalicelib.services.jobs import JobService
        from chalicelib.store.jobs import JobRepository
        from chalicelib.store.projects import ProjectRepository
        from chalicelib.store.tasks import TaskRepository

        return JobService(self.access, ProjectRepository(), TaskRepository(), JobRepository(), self.images,
                          self.activity)

    @provided
    def annotations(self) -> "AnnotationService":
        from chalicelib.services.annotations import AnnotationService
        from chalicelib.store.annotations import AnnotationRepository
        from chalicelib.store.images import ImageRepository

        return AnnotationService(self.jobs, AnnotationRepository(), ImageRepository(), self.documents_bucket,
                                 self.activity)

    @provided
    def promotions(self) -> "PromotionService":
        """Predictions into a job's annotations, as drafts (through `annotations`' write path)."""
        from chalicelib.services.promotions import PromotionService
        from chalicelib.store.analyses import AnalysisRepository
        from chalicelib.store.jobs import JobRepository

        from chalicelib.store.images import ImageRepository

        return PromotionService(self.jobs, JobRepository(), AnalysisRepository(), self.annotations, self.activity,
                                ImageRepository(), self.access)

    @provided
    def saved_filters(self) -> "SavedFilterService":
        from chalicelib.services.saved_filters import SavedFilterService
        from chalicelib.store.saved_filters import SavedFilterRepository

        return SavedFilterService(self.access, SavedFilterRepository(), self.activity)

    @provided
    def exports(self) -> "ExportService":
        from chalicelib.services.export_contents import ExportContents
        from chalicelib.services.exports import ExportService
        from chalicelib.store.annotations import AnnotationRepository
        from chalicelib.store.exports import ExportRepository
        from chalicelib.store.image_tags import ImageTagRepository
        from chalicelib.store.images import ImageRepository
        from chalicelib.store.jobs import JobRepository
        from chalicelib.store.projects import ProjectRepository
        from chalicelib.store.tags import TagRepository
        from chalicelib.store.tasks import TaskRepository

        contents = ExportContents(self.explore, TaskRepository(), JobRepository(), AnnotationRepository(),
                                  TagRepository(), ImageTagRepository(), self.documents_bucket)
        return ExportService(self.access, ExportRepository(), ProjectRepository(), ImageRepository(), contents,
                             self.saved_filters,
                             self.share_bucket, self.exports_bucket, self.activity, self.start_workflow,
                             self.settings.export_state_machine)

    @provided
    def dataset_backup(self) -> "DatasetBackupService":
        """A dataset's backup ZIP, the deletion workflow's first steps."""
        from chalicelib.services.dataset_backup import DatasetBackupService
        from chalicelib.store.annotations import AnnotationRepository
        from chalicelib.store.datasets import DatasetRepository
        from chalicelib.store.images import ImageRepository
        from chalicelib.store.jobs import JobRepository
        from chalicelib.store.projects import ProjectRepository
        from chalicelib.store.tasks import TaskRepository

        return DatasetBackupService(self.settings, DatasetRepository(), ImageRepository(), ProjectRepository(),
                                    TaskRepository(), JobRepository(), AnnotationRepository(), self.share_bucket,
                                    self.cache_bucket, self.documents_bucket)


_services = Services()


def services() -> Services:
    """The process's `Services` (a warm Lambda keeps it between invocations)."""
    return _services

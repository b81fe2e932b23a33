"""The files of a dataset import: the first two steps of the `import` state machine
(services/dataset_import.py says what the whole machine does).

*inspect* reads each staged ZIP's central directory by ranged GETs (formats/zip_archive.py), and
the annotation files, before anything is written: an unsafe archive, an unreadable annotation file
or one whose image references match no path refuses the import (`ImportRefused`, naming every
offending member or file). Then it copies the staged loose files under the dataset's prefix and
writes the plan (members cut into batches, keys already there) to the cache bucket.

*extract* streams one batch of members into the share (ranged GET, inflate, PutObject or multipart,
formats/zip_extract.py); an image is spooled on the way (memory up to a limit, disk past it), its
facts derived from those bytes and its registry record written at once, so its S3 event finds the
record current and stops. A batch of keys already under the prefix is registered like any
registration. A batch's result is kept: a batch run again reports its first result.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from chalicelib.config import Settings
from chalicelib.errors import BadRequestError, ValidationError
from chalicelib.formats import annotation_import, dataset_contents, zip_archive
from chalicelib.formats.dataset_contents import File
from chalicelib.formats.zip_archive import Limits, Member
from chalicelib.formats.zip_extract import batches, member_chunks, unwritable
from chalicelib.services import paths
from chalicelib.services.operations import folder
from chalicelib.store.archives import S3Sink, S3Source, WindowedSource
from chalicelib.store.datasets import DatasetRepository, dataset_prefix
from chalicelib.store.images import Image
from chalicelib.store.objects import Bucket, ObjectInfo
from chalicelib.store.operations import OperationRepository

if TYPE_CHECKING:
    from chalicelib.services.registry import RegistryService

WORKERS = 2
MAX_ANNOTATION_BYTES = 512 << 20  # annotation files read whole by the annotations step, together


class ImportRefused(ValidationError):
    """The import cannot run; its details name each offending member or file. Nothing was written."""

    code = "import_refused"



class ImportFiles:
    def __init__(self, settings: Settings, datasets: DatasetRepository, records: OperationRepository,
                 staging: Bucket, share: Bucket, cache: Bucket, s3, registry: "RegistryService") -> None:
        self._settings = settings
        self._datasets = datasets
        self._records = records
        self._staging = staging
        self._share = share
        self._cache = cache
        self._s3 = s3
        self._registry = registry

    def inspect(self, operation_id: str) -> dict[str, Any]:
        operation = self._records.get(operation_id)
        dataset_id = operation.params["dataset_id"]
        prefix = dataset_prefix(dataset_id)
        staged = sorted((info for page in self._staging.walk(staging_prefix(dataset_id)) for info in page),
                        key=lambda info: info.key)
        archives, problems, members = [], [], []
        limits = Limits(max_members=self._settings.import_max_members,
                        max_total_uncompressed=self._settings.import_max_bytes)
        for info in staged:
            if not info.key.lower().endswith(".zip"):
                continue
            name = info.key.removeprefix(staging_prefix(dataset_id))
            source = S3Source(self._s3, self._staging.name, info.key)
            inventory = zip_archive.inspect(source, limits)
            problems += [{"file": name, "member": finding.name, "reason": finding.reason}
                         for finding in inventory.problems]
            archives.append({"key": info.key, "etag": source.etag, "name": name})
            members += [(len(archives) - 1, member) for member in inventory.members]
        loose = [info for info in staged if not info.key.lower().endswith(".zip")]
        present = [info for page in self._share.walk(prefix) for info in page]
        problems += _collisions(members, loose, dataset_id)
        if problems:
            self._refuse(operation_id, ImportRefused(_refusal(problems), problems))
        files = ([File(member.name, member.size) for _, member in members]
                 + [File(info.key.removeprefix(staging_prefix(dataset_id)), info.size) for info in loose]
                 + [File(info.key.removeprefix(prefix), info.size) for info in present])
        contents = dataset_contents.sort(_unique(files))
        # The annotation files this import brings; those of earlier imports were imported then.
        brought = {member.name for _, member in members} | {
            info.key.removeprefix(staging_prefix(dataset_id)) for info in loose}
        contents.annotation_files = [item for item in contents.annotation_files if item.name in brought]
        self._check_annotations(operation_id, dataset_id, contents, members, archives, loose)
        # Checked: only now is anything written.
        for info in loose:
            self._share.copy_from(self._staging, info.key, prefix + info.key.removeprefix(staging_prefix(dataset_id)))
        extracted = {member.name for _, member in members}
        keys = [prefix + item.name for item in contents.images if item.name not in extracted]
        plan_batches = [{"archive": archive, "members": [_member_row(m) for _, m in members[start:end]]}
                        for archive, start, end in _archive_batches(members)]
        plan_batches += [{"keys": keys[start:start + 500]} for start in range(0, len(keys), 500)]
        plan = {"archives": archives, "batches": plan_batches,
                "annotation_files": [item.name for item in contents.annotation_files],
                "bytes": {"images": contents.bytes_images, "annotations": contents.bytes_annotations,
                          "other": contents.bytes_other},
                "folders": contents.folders, "staged": [info.key for info in staged]}
        self._cache.put_json(f"{folder(operation_id)}/plan.json", plan)
        self._records.start(operation_id, len(members) + len(keys))
        return {"operation_id": operation_id, "batches": list(range(len(plan_batches)))}

    def _check_annotations(self, operation_id: str, dataset_id: str, contents: dataset_contents.Contents,
                           members: list[tuple[int, Member]], archives: list[dict], loose: list[ObjectInfo]) -> None:
        """Parse the annotation files against the image paths (sizes unknown yet): what cannot be
        read or matches no image fails the import now, before anything is written."""
        if not contents.annotation_files:
            return
        if contents.bytes_annotations > MAX_ANNOTATION_BYTES:
            self._refuse(operation_id, ImportRefused(
                f"The annotation files hold {contents.bytes_annotations} bytes: more than the "
                f"{MAX_ANNOTATION_BYTES} an import reads", [{"reason": "annotation files too large"}]))
        by_name = {member.name: (archive, member) for archive, member in members}
        staged = {info.key.removeprefix(staging_prefix(dataset_id)): info.key for info in loose}
        files = {}
        for item in contents.annotation_files:
            if item.name in by_name:
                archive, member = by_name[item.name]
                source = S3Source(self._s3, self._staging.name, archives[archive]["key"], archives[archive]["etag"])
                files[item.name] = b"".join(member_chunks(source, member))
            else:  # the files this import brings: members of its archives, or staged beside them
                files[item.name] = self._staging.read(staged[item.name])[0]
        try:
            annotation_import.parse(files, [item.name for item in contents.images])
        except (BadRequestError, ValidationError) as exc:
            self._refuse(operation_id, ImportRefused(exc.message, exc.details or [{"reason": exc.message}]))

    def _refuse(self, operation_id: str, refusal: ImportRefused) -> None:
        """Keep the refusal's problems for the failure step (a Lambda error carries its message only)."""
        self._cache.put_json(f"{folder(operation_id)}/problems.json", refusal.details)
        raise refusal

    def extract(self, operation_id: str, batch: int) -> dict[str, int]:
        operation = self._records.get(operation_id)
        dataset_id = operation.params["dataset_id"]
        results_key = f"{folder(operation_id)}/results/{batch:05d}.json"
        plan = self._cache.get_json(f"{folder(operation_id)}/plan.json")
        entry = plan["batches"][batch]
        if self._cache.exists(results_key):
            done = self._cache.get_json(results_key)
        else:
            if "keys" in entry:
                done = self._register_present(entry["keys"], operation.created_by, dataset_id)
            else:
                archive = plan["archives"][entry["archive"]]
                source = WindowedSource(S3Source(self._s3, self._staging.name, archive["key"], archive["etag"]))
                members = [_member_of(row) for row in entry["members"]]
                with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="extract") as pool:
                    outcomes = list(pool.map(
                        lambda member: self._extract_one(source, member, dataset_id, operation.created_by), members))
                self._registry.changed([row["id"] for row in outcomes if row.get("id")])
                done = {"images": [row for row in outcomes if row.get("id")],
                        "failed": [row for row in outcomes if not row.get("id") and row.get("reason")]}
            self._cache.put_json(results_key, done)
        count = len(entry.get("keys") or entry.get("members") or [])
        self._records.advance(operation_id, batch, count)
        return {"batch": batch, "images": len(done["images"]), "failed": len(done["failed"])}

    def _extract_one(self, source: WindowedSource, member: Member, dataset_id: str, actor: str | None) -> dict[str, Any]:
        from chalicelib import imaging  # Pillow: loaded by the steps that decode images only

        key = dataset_prefix(dataset_id) + member.name
        refused = unwritable(member, key)
        if refused:
            return {"path": member.name, "reason": refused}
        sink = S3Sink(self._s3, self._share.name)
        try:
            if not paths.is_image_key(key):
                sink.write(key, member_chunks(source, member), member.size)
                return {"path": member.name}
            spooled = imaging.spool(member_chunks(source, member))
            try:
                info = sink.write(key, iter(lambda: spooled.file.read(1 << 20), b""), spooled.size)
                spooled.file.seek(0)
                facts = self._registry.facts_of(spooled, info)
            finally:
                spooled.file.close()
        except zip_archive.Refusal as exc:
            return {"path": member.name, "reason": str(exc)}
        image, _ = self._registry.register_facts(key, facts, actor)
        if image is None:
            return {"path": member.name, "reason": "not registered"}
        return _image_row(member.name, image)

    def _register_present(self, keys: list[str], actor: str | None, dataset_id: str) -> dict[str, Any]:
        from chalicelib.services.registry import REGISTER, Listed

        result = self._registry.index((Listed(key) for key in keys), REGISTER, actor)
        images = {image.file_path: image for image in result.registered + result.refreshed}
        raced = [key for key in result.already_existed if key not in images]
        images.update(self._registry.records_of(raced))
        prefix = dataset_prefix(dataset_id)
        rows = [_image_row(key.removeprefix(prefix), image) for key, image in sorted(images.items())]
        failed = [{"path": entry["file_path"].removeprefix(prefix), "reason": entry["reason"]}
                  for entry in result.failed]
        return {"images": [row for row in rows if row.get("id")], "failed": failed}

    def images(self, operation_id: str, plan: dict) -> list[dict[str, Any]]:
        rows = []
        for batch in range(len(plan["batches"])):
            rows += self._cache.get_json(f"{folder(operation_id)}/results/{batch:05d}.json")["images"]
        return rows

    def failed(self, operation_id: str, plan: dict) -> list[dict[str, Any]]:
        rows = []
        for batch in range(len(plan["batches"])):
            rows += self._cache.get_json(f"{folder(operation_id)}/results/{batch:05d}.json")["failed"]
        return rows


def staging_prefix(dataset_id: str) -> str:
    return f"uploads/{dataset_id}/"


def _unique(files: list[File]) -> list[File]:
    return list({item.name: item for item in files}.values())


def _collisions(members: list[tuple[int, Member]], loose: list[ObjectInfo], dataset_id: str) -> list[dict]:
    """Two archives (or an archive and a staged file) that bring the same path."""
    seen: dict[str, str] = {}
    found = []
    names = [(str(archive), member.name) for archive, member in members]
    names += [("staged", info.key.removeprefix(staging_prefix(dataset_id))) for info in loose]
    for origin, name in names:
        folded = name.casefold()
        if folded in seen and seen[folded] != origin:
            found.append({"member": name, "reason": "the same path comes in two uploaded files"})
        seen.setdefault(folded, origin)
    return found


def _refusal(problems: list[dict]) -> str:
    shown = "; ".join(f"{p.get('member') or p.get('file') or 'archive'}: {p['reason']}" for p in problems[:5])
    more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    return f"The upload is refused, nothing was imported: {shown}{more}"


def _archive_batches(members: list[tuple[int, Member]]) -> list[tuple[int, int, int]]:
    """(archive, start, end) over `members`, each batch inside one archive."""
    found, start = [], 0
    while start < len(members):
        archive = members[start][0]
        end = start
        while end < len(members) and members[end][0] == archive:
            end += 1
        found += [(archive, start + a, start + b) for a, b in batches([m for _, m in members[start:end]],
                                                                       max_members=200, max_bytes=1 << 30)]
        start = end
    return found


def _member_row(member: Member) -> list:
    return [member.name, member.header_offset, member.compressed_size, member.size, member.method, member.crc]


def _member_of(row: list) -> Member:
    name, offset, compressed, size, method, crc = row
    return Member(name=name, header_offset=offset, compressed_size=compressed, size=size, method=method, crc=crc)


def _image_row(path: str, image: Image) -> dict[str, Any]:
    return {"path": path, "id": image.id, "status": image.status, "width": image.width, "height": image.height,
            "sha256": image.sha256, "reason": image.reason}

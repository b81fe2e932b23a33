"""Split leaks: copies of one picture in different splits (a model validated on what it trained on).

Three kinds, each a pair of an earlier-split and a later-split copy (train < val < test):
- `same_image`: one image sits in tasks of two splits;
- `exact`: two images with the same SHA-256 (the same bytes under two keys);
- `near`: two images whose perceptual hashes differ in at most `max_distance` of 64 bits (a photo
  re-encoded, resized or lightly cropped), found by multi-index hashing (`near_pairs`), not by
  comparing every pair.
Only images in a split count (`none` is no split); two copies in one split are no leak.

`SplitLeakService` answers `GET /projects/{id}/split-leaks` from the project's Explore index
(`ProjectIndex.split_leaks`); exports find the leaks among the images they hold with `find`, on
the split each image is exported in (export_contents.py).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from itertools import combinations
from math import comb
from typing import TYPE_CHECKING, Iterable, Protocol, Sequence, get_args

from chalicelib.errors import ValidationError
from chalicelib.services.filters import Split

if TYPE_CHECKING:  # types only: the schemas import this module's limits
    from chalicelib.services.access import Access
    from chalicelib.services.identity import Identity
    from chalicelib.services.project_index import ProjectIndex

# The order splits are used in: of two copies, the one in the later split is the leak.
SPLIT_ORDER: tuple[str, ...] = tuple(split for split in get_args(Split) if split != "none")
KINDS = ("same_image", "exact", "near")
DEFAULT_DISTANCE = 4
MAX_DISTANCE = 16
BITS = 64
# The most chunks a bucket key combines (see `_agreeing`).
MOST_AGREEING = 4
# A bucket insertion (and the pass over the buckets) costs about 16 in-bucket comparisons
# (measured: bench/bench_split_leaks.py).
INSERT_COST = 16
# The most work (in comparisons, `work`) one answer may take: about 10 s of pure Python, and the
# default distance up to 1,000,000 images. Past it the distance is refused: multi-index hashing
# saves little once d is a large part of 64 bits (at d = 16 over 100,000 images it compares about
# as many pairs as brute force), and pairs that far apart are mostly chance.
WORK_LIMIT = 250_000_000


def split_rank(split: str) -> int:
    return SPLIT_ORDER.index(split) if split in SPLIT_ORDER else len(SPLIT_ORDER)


@dataclass(frozen=True)
class Copy:
    """An image as it sits in splits: the splits of the tasks it is in (never `none`), in split order."""

    image_id: str
    file_path: str
    splits: tuple[str, ...]
    sha256: str | bytes | None = None
    phash: int | None = None  # unsigned 64-bit


@dataclass(frozen=True)
class Side:
    image_id: str
    file_path: str
    split: str


@dataclass(frozen=True)
class Leak:
    """Two copies of one picture in different splits: `later` is the copy `exclude_leaks` drops."""

    kind: str
    distance: int
    earlier: Side
    later: Side

    def key(self) -> tuple:
        return (KINDS.index(self.kind), self.distance, self.earlier.file_path, self.earlier.image_id,
                split_rank(self.earlier.split), self.later.file_path, self.later.image_id, split_rank(self.later.split))


def _pairs(a: Copy, b: Copy, kind: str, distance: int) -> list[Leak]:
    """Every way two copies (or one image, `a is b`) sit in different splits, earlier split first."""
    found = []
    ways = combinations(a.splits, 2) if a is b else ((s, t) for s in a.splits for t in b.splits)
    for s, t in ways:
        if s == t:
            continue
        first, second = (Side(a.image_id, a.file_path, s), Side(b.image_id, b.file_path, t))
        if split_rank(t) < split_rank(s):
            first, second = second, first
        found.append(Leak(kind, distance, first, second))
    return found


def own_leaks(copy: Copy) -> list[Leak]:
    """An image in tasks of several splits is a leak of itself: one `same_image` leak per two splits."""
    return _pairs(copy, copy, "same_image", 0)


def find(copies: Sequence[Copy], max_distance: int, same_content: Iterable[Sequence[int]] | None = None,
         field: str = "max_distance") -> list[Leak]:
    """Every leak among `copies`, in a stable order (kind, distance, paths). `same_content` are the
    groups (indexes into `copies`) of one SHA-256 when the caller has grouped them already. A
    distance whose work is over WORK_LIMIT for this many copies is a 422 naming `field`."""
    hashed = [n for n, copy in enumerate(copies) if copy.phash is not None]
    if work(max_distance, len(hashed)) > WORK_LIMIT:
        largest = largest_distance(len(hashed))
        raise ValidationError(
            f"{field} {max_distance} is too large for {len(hashed):,} images in splits: at most {largest} is "
            "answered for this many (each bit more multiplies the work)",
            [{"field": field, "message": f"at most {largest} for {len(hashed):,} images in splits"}])
    leaks: list[Leak] = [leak for copy in copies if len(copy.splits) > 1 for leak in own_leaks(copy)]
    if same_content is None:
        groups: dict[str | bytes, list[int]] = defaultdict(list)
        for n, copy in enumerate(copies):
            if copy.sha256:
                groups[copy.sha256].append(n)
        same_content = [group for group in groups.values() if len(group) > 1]
    for group in same_content:
        for i, j in combinations(sorted(group), 2):
            leaks += _pairs(copies[i], copies[j], "exact", 0)
    for i, j, distance in near_pairs([copies[n].phash for n in hashed], max_distance):  # type: ignore[misc]
        a, b = copies[hashed[i]], copies[hashed[j]]
        if a.sha256 and a.sha256 == b.sha256:
            continue  # the same bytes: an exact leak already
        leaks += _pairs(a, b, "near", distance)
    return sorted(leaks, key=Leak.key)


def counts(leaks: Iterable[Leak]) -> dict[str, int]:
    found = dict.fromkeys(KINDS, 0)
    for leak in leaks:
        found[leak.kind] += 1
    return found


def later_copies(leaks: Iterable[Leak]) -> set[str]:
    """The images `exclude_leaks` leaves out: the later-split copy of every exact and near pair. A
    `same_image` leak has no second copy to leave out."""
    return {leak.later.image_id for leak in leaks if leak.kind != "same_image"}


# Near pairs: multi-index hashing ------------------------------------------------------------------


def _chunk_masks(chunks: int) -> list[int]:
    """`chunks` disjoint bit masks covering the 64 bits, as even as can be."""
    masks, start = [], 0
    for n in range(chunks):
        width = BITS // chunks + (1 if n < BITS % chunks else 0)
        masks.append(((1 << width) - 1) << start)
        start += width
    return masks


def _cost(max_distance: int, n: int, k: int) -> float:
    chunks = max_distance + k
    return comb(chunks, k) * (INSERT_COST * n + n * n / 2 / 2 ** (BITS * k / chunks))


def work(max_distance: int, n: int) -> float:
    """The estimated work (in comparisons) of `near_pairs` over `n` uniform hashes."""
    return _cost(max_distance, n, _agreeing(max_distance, n))


def largest_distance(n: int) -> int:
    """The largest max_distance answered over `n` hashes within WORK_LIMIT."""
    return max((d for d in range(MAX_DISTANCE + 1) if work(d, n) <= WORK_LIMIT), default=0)


def _agreeing(max_distance: int, n: int) -> int:
    """How many chunks a bucket key combines, for the least estimated work on `n` uniform hashes.

    Cut into `max_distance + k` chunks, two hashes within `max_distance` differ in at most
    `max_distance` chunks, so they agree exactly on at least `k` (k = 1 is the pigeonhole principle).
    Each of the C(d + k, k) chunk combinations is one pass: n bucket insertions, and about
    n² / 2 / 2^bits comparisons inside buckets. A larger k makes keys longer (fewer comparisons) but
    passes more numerous; a small n wants k = 1.
    """
    usable = [k for k in range(1, MOST_AGREEING + 1) if max_distance + k <= BITS]
    return min(usable, key=lambda k: _cost(max_distance, n, k))


def near_pairs(hashes: Sequence[int], max_distance: int, agreeing: int | None = None) -> list[tuple[int, int, int]]:
    """Every (i, j, distance) with i < j and Hamming distance of `hashes[i]`, `hashes[j]` (unsigned
    64-bit) at most `max_distance`, sorted. `agreeing` (how many chunks a key combines) is chosen
    by `_agreeing` unless given; the answer is the same for any."""
    if not 0 <= max_distance < BITS:
        raise ValueError(f"max_distance must be 0 to {BITS - 1}, not {max_distance}")
    k = agreeing or _agreeing(max_distance, len(hashes))
    found: dict[tuple[int, int], int] = {}
    for combo in combinations(_chunk_masks(max_distance + k), k):
        mask = 0
        for chunk in combo:
            mask |= chunk
        buckets: dict[int, list[int]] = defaultdict(list)
        for n, value in enumerate(hashes):
            buckets[value & mask].append(n)
        for members in buckets.values():
            if len(members) < 2:
                continue
            for x, i in enumerate(members[:-1]):
                value = hashes[i]
                for j in members[x + 1:]:
                    distance = (value ^ hashes[j]).bit_count()
                    if distance <= max_distance:
                        found[(i, j)] = distance
    return sorted((i, j, distance) for (i, j), distance in found.items())


# The API's service ---------------------------------------------------------------------------------


class ProjectIndexes(Protocol):
    def current(self, project_id: str) -> ProjectIndex:
        """The project's Explore index with every change so far applied."""


@dataclass(frozen=True)
class LeakPage:
    leaks: list[Leak]
    counts: dict[str, int]
    total: int


class SplitLeakService:
    def __init__(self, access: Access, indexes: ProjectIndexes) -> None:
        self._access = access
        self._indexes = indexes

    def page(self, actor: Identity, project_id: str, max_distance: int, page: int, page_size: int) -> LeakPage:
        """One page of the project's split leaks (most certain first: same image, exact, then near
        by distance) and the counts by kind."""
        self._access.require(actor, project_id, "leaks.read")
        leaks = self._indexes.current(project_id).split_leaks(max_distance)
        start = (page - 1) * page_size
        return LeakPage(leaks[start : start + page_size], counts(leaks), len(leaks))

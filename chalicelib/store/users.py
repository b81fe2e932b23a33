"""Users as first seen through their tokens (`pk = <sub>`).

A user whose token carried a verified e-mail is also in the sparse `by_email` index
(`verified_email`, normalized), so that inviting that address finds them.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pynamodb.attributes import ListAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.exceptions import DoesNotExist
from pynamodb.indexes import GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model

from chalicelib.errors import NotFoundError
from chalicelib.store.dynamo import conditional, entity, store_errors, table_meta


class ByEmail(GlobalSecondaryIndex):
    class Meta:
        index_name = "by_email"
        projection = KeysOnlyProjection()

    verified_email = UnicodeAttribute(hash_key=True)


class UserItem(Model):
    Meta = table_meta("users_table")

    sub = UnicodeAttribute(hash_key=True)
    email = UnicodeAttribute(null=True)
    verified_email = UnicodeAttribute(null=True)  # normalized; only when the token said it is verified
    groups = ListAttribute(of=UnicodeAttribute, default=list)
    first_seen_at = UTCDateTimeAttribute()

    by_email = ByEmail()


@dataclass(frozen=True)
class User:
    sub: str
    email: str | None
    groups: list[str]
    first_seen_at: datetime


def _to_user(item: UserItem) -> User:
    return entity(User, item)

class UserRepository:
    def add_if_new(self, user: User, verified_email: str | None = None) -> bool:
        """Record `user` unless a record exists; True when this call created it."""
        item = UserItem(sub=user.sub, email=user.email, verified_email=verified_email, groups=user.groups,
                        first_seen_at=user.first_seen_at)
        with conditional("recording a user") as write:
            item.save(condition=UserItem.sub.does_not_exist())
        return write.done

    def get(self, sub: str) -> User:
        try:
            with store_errors("reading a user"):
                return _to_user(UserItem.get(sub))
        except DoesNotExist as exc:
            raise NotFoundError(f"User '{sub}' not found") from exc

    def exists(self, sub: str) -> bool:
        try:
            with store_errors("reading a user"):
                UserItem.get(sub, consistent_read=True, attributes_to_get=["sub"])
        except DoesNotExist:
            return False
        return True

    def subs_with_email(self, verified_email: str) -> list[str]:
        """The users whose token showed this verified (normalized) e-mail."""
        with store_errors("finding a user by e-mail"):
            return sorted(item.sub for item in UserItem.by_email.query(verified_email))

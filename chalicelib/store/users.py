"""Users as first seen through their tokens (`pk = <sub>`)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pynamodb.attributes import ListAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.exceptions import DoesNotExist
from pynamodb.models import Model

from chalicelib.errors import NotFoundError
from chalicelib.store.dynamo import conditional, entity, store_errors, table_meta


class UserItem(Model):
    Meta = table_meta("users_table")

    sub = UnicodeAttribute(hash_key=True)
    email = UnicodeAttribute(null=True)
    groups = ListAttribute(of=UnicodeAttribute, default=list)
    first_seen_at = UTCDateTimeAttribute()


@dataclass(frozen=True)
class User:
    sub: str
    email: str | None
    groups: list[str]
    first_seen_at: datetime


def _to_user(item: UserItem) -> User:
    return entity(User, item)

class UserRepository:
    def add_if_new(self, user: User) -> bool:
        """Record `user` unless a record exists; True when this call created it."""
        item = UserItem(sub=user.sub, email=user.email, groups=user.groups, first_seen_at=user.first_seen_at)
        with conditional("recording a user") as write:
            item.save(condition=UserItem.sub.does_not_exist())
        return write.done

    def get(self, sub: str) -> User:
        try:
            with store_errors("reading a user"):
                return _to_user(UserItem.get(sub))
        except DoesNotExist as exc:
            raise NotFoundError(f"User '{sub}' not found") from exc

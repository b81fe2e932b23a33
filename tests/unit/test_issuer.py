"""The local issuer's key file: made once, whole, even when several processes start together."""
from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from infra.local.issuer import _load_or_create


def _public_key(path: str) -> bytes:
    key = _load_or_create(Path(path))
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_processes_starting_together_share_one_key_and_leave_no_temporary_file(tmp_path):
    path = tmp_path / "local" / "issuer-key.pem"
    path.parent.mkdir()

    with ProcessPoolExecutor(4) as pool:
        keys = set(pool.map(_public_key, [str(path)] * 8))

    assert len(keys) == 1
    assert keys == {_public_key(str(path))}
    assert sorted(item.name for item in path.parent.iterdir()) == ["issuer-key.pem"]
    assert path.stat().st_mode & 0o777 == 0o600

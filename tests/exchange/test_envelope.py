"""The envelope digest and signatures: every field counts, nothing else does."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from envelope.digest import batch_digest, digest_of_batch
from envelope.signing import Ed25519Signer, public_key_from_text, verify
from exchange.v1 import exchange_pb2

SIGNER = Ed25519Signer.generate()

batch_fields = st.fixed_dictionaries(
    {
        "resource": st.text(min_size=1, max_size=20),
        "schema_fingerprint": st.binary(min_size=8, max_size=8),
        "batch_id": st.text(min_size=1, max_size=40),
        "sequence": st.integers(min_value=0, max_value=2**64 - 1),
        "create_seconds": st.integers(min_value=0, max_value=2**40),
        "create_nanos": st.integers(min_value=0, max_value=999_999_999),
        "records": st.lists(st.binary(max_size=64), min_size=1, max_size=8),
    }
)


def _batch(fields: dict[str, Any]) -> exchange_pb2.RecordBatch:
    batch = exchange_pb2.RecordBatch(
        resource=fields["resource"],
        schema_fingerprint=fields["schema_fingerprint"],
        batch_id=fields["batch_id"],
        sequence=fields["sequence"],
        records=fields["records"],
    )
    batch.create_time.seconds = fields["create_seconds"]
    batch.create_time.nanos = fields["create_nanos"]
    return batch


@given(batch_fields)
def test_the_digest_survives_a_wire_round_trip(fields: dict[str, Any]) -> None:
    batch = _batch(fields)
    again = exchange_pb2.RecordBatch.FromString(batch.SerializeToString())
    assert digest_of_batch(again) == batch_digest(**fields)


@given(
    batch_fields,
    st.sampled_from(
        [
            "resource",
            "schema_fingerprint",
            "batch_id",
            "sequence",
            "create_seconds",
            "create_nanos",
            "records",
        ]
    ),
    st.data(),
)
def test_changing_any_covered_field_changes_the_digest(
    fields: dict[str, Any], name: str, data: st.DataObject
) -> None:
    changed = dict(fields)
    value = fields[name]
    if isinstance(value, int):
        changed[name] = value + 1 if value < 999_999_999 else value - 1
    elif isinstance(value, bytes):
        changed[name] = bytes([value[0] ^ 1]) + value[1:]
    elif isinstance(value, str):
        changed[name] = value + "x"
    else:
        index = data.draw(st.integers(0, len(value) - 1))
        records = list(value)
        records[index] = records[index] + b"\x00"
        changed[name] = records
    assert batch_digest(**changed) != batch_digest(**fields)


@given(st.lists(st.binary(min_size=1, max_size=8), min_size=2, max_size=6, unique=True))
def test_reordering_records_changes_the_digest(records: list[bytes]) -> None:
    base = {
        "resource": "R",
        "schema_fingerprint": b"\x00" * 8,
        "batch_id": "b",
        "sequence": 1,
        "create_seconds": 1,
        "create_nanos": 0,
    }
    assert batch_digest(**base, records=records) != batch_digest(
        **base, records=records[1:] + records[:1]
    )


def test_moving_bytes_between_records_changes_the_digest() -> None:
    base = {
        "resource": "R",
        "schema_fingerprint": b"\x00" * 8,
        "batch_id": "b",
        "sequence": 1,
        "create_seconds": 1,
        "create_nanos": 0,
    }
    assert batch_digest(**base, records=[b"ab", b"c"]) != batch_digest(
        **base, records=[b"a", b"bc"]
    )


@given(st.binary(min_size=32, max_size=32))
def test_a_signature_verifies_only_for_its_digest_and_key(digest: bytes) -> None:
    signature = SIGNER.sign(digest)
    assert verify(SIGNER.public_key, digest, signature)
    assert not verify(SIGNER.public_key, bytes([digest[0] ^ 1]) + digest[1:], signature)
    assert not verify(Ed25519Signer.generate().public_key, digest, signature)
    assert not verify(SIGNER.public_key, digest, b"short")


def test_a_saved_key_loads_back_with_owner_only_permissions(tmp_path: Any) -> None:
    path = tmp_path / "key.pem"
    SIGNER.save(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert Ed25519Signer.from_file(path).public_key == SIGNER.public_key


def test_public_keys_parse_from_base64_hex_and_pem() -> None:
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    raw = SIGNER.public_key
    pem = (
        Ed25519PublicKey.from_public_bytes(raw)
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    for text in (base64.b64encode(raw).decode(), raw.hex(), pem):
        assert public_key_from_text(text) == raw

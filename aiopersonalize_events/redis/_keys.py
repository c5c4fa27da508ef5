"""Key names that keep working on Redis Cluster.

A forwarder writes dead letters and acknowledges the stream's entries in one
transaction, so the dead-letter stream must live in the stream's hash slot.
Redis Cluster hashes only the part of a key between the first ``{`` and the
next ``}`` when there is one (the hash tag), and the whole key otherwise:
``dead_letter_key`` keeps the stream's tag, or makes the whole stream name
the tag, so both keys always hash alike. The rate limiter and the spool use
one key each and need no tag.
"""

from __future__ import annotations

from ..errors import ValidationError

__all__ = ["dead_letter_key", "hash_tag"]


def hash_tag(key: str) -> str | None:
    """The part of ``key`` Redis Cluster hashes when it has a hash tag (``{...}``, not empty), else None."""
    start = key.find("{")
    if start < 0:
        return None
    end = key.find("}", start + 1)
    if end <= start + 1:
        return None
    return key[start + 1 : end]


def dead_letter_key(stream: str) -> str:
    """The dead-letter stream of ``stream``, in the same cluster slot: ``S:dead`` or ``{S}:dead``.

    ``events:{tracker-1}`` -> ``events:{tracker-1}:dead``; ``events`` (no
    tag) -> ``{events}:dead``, which hashes ``events`` just as ``events`` does.
    """
    if hash_tag(stream) is not None:
        return f"{stream}:dead"
    if "}" in stream:  # "{S}" would take a shorter tag: no derived name hashes like S
        raise ValidationError("stream", "has a '}' but no hash tag: give the dead-letter stream's name")
    return f"{{{stream}}}:dead"

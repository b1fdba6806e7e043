"""``qerberos monitor URL --state DIR``: follow a qerberos log from outside, through its public endpoints.

Each round fetches ``GET /checkpoint``, verifies the log's signature (and, given witness keys, that at
least ``quorum`` of them cosigned it: one not yet witnessed enough is left for a later round), and checks
it against the last checkpoint this monitor accepted, kept in ``DIR/monitor.json`` with the Merkle frontier
of that tree (the perfect subtrees covering it), written atomically. A smaller tree is a shrink; a tree of the
same size with another root, or a larger one whose root is not what the accepted frontier and the new leaf
hashes make, is a fork. The new leaf hashes come from the log's level-0 tiles (C2SP tlog-tiles), read in
parallel; with a read token, the entry bundles too, each entry hashed and compared with its leaf. On a fork
or a shrink the monitor logs both checkpoints and stops (``ForkDetected``): that is what an auditor leaves
running. The first round accepts the log's history from the empty tree, reading all of it.
"""

from __future__ import annotations

import base64
import concurrent.futures
import dataclasses
import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx

from models import keys, merkle
from models.tiles import ENTRIES, TILE_WIDTH, TileRequest, tile_path, tile_width
from qerberos import verifier
from qerberos.errors import ConfigurationError, DependencyUnavailableError, IntegrityError

__all__ = ["ForkDetected", "Monitor", "RoundResult"]

logger = logging.getLogger(__name__)

_STATE = "monitor.json"
_PARALLEL_FETCHES = 8
_TILES_PER_BATCH = 64


class ForkDetected(IntegrityError):
    """The log showed a checkpoint inconsistent with one this monitor accepted (a fork or a shrink)."""


@dataclasses.dataclass(frozen=True, slots=True)
class RoundResult:
    """What a round saw: the size accepted after it, and whether a new checkpoint was accepted."""

    size: int
    advanced: bool
    waiting_for_witnesses: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class _Accepted:
    note: str
    checkpoint: verifier.Checkpoint
    frontier: dict[merkle.Key, bytes]


class Monitor:
    """Follows the log at ``url``, signed by ``log_keys``, keeping what it accepted in ``state``."""

    def __init__(
        self,
        url: str,
        state: Path,
        log_keys: Sequence[str],
        *,
        witness_keys: Sequence[str] = (),
        quorum: int = 0,
        token: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        try:
            names = {verifier.parse_verifier_key(key).name for key in log_keys}
            witnesses = {verifier.parse_verifier_key(key, verifier.ALG_COSIGNATURE_V1).name for key in witness_keys}
        except verifier.VerificationError as exc:
            raise ConfigurationError(f"not a verifier key: {exc.reason}") from exc
        if len(names) != 1:
            raise ConfigurationError(f"the log's keys name one origin, not {sorted(names)}")
        if not 0 <= quorum <= len(witnesses):
            raise ConfigurationError(f"a policy of {quorum} of {len(witnesses)} witnesses cannot be met")
        (self.origin,) = names
        self._url = url.rstrip("/")
        self._state = Path(state)
        self._log_keys = list(log_keys)
        self._witness_keys = list(witness_keys)
        self._quorum = quorum
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._entries = token is not None
        self._http = httpx.Client(timeout=timeout, headers=headers)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def round(self) -> RoundResult:
        """One look at the log: ``ForkDetected`` on a fork or a shrink, ``IntegrityError`` for a checkpoint or
        tiles that do not verify, ``DependencyUnavailableError`` when the log does not answer."""
        note = self._get("/checkpoint").decode("utf-8")
        try:
            checkpoint = verifier.verify_checkpoint(note, self._log_keys, self.origin)
            if self._witness_keys:
                verifier.verify_cosignatures(note, self._witness_keys, self._quorum)
        except verifier.NoteVerificationError as exc:
            if exc.problem == "quorum":
                logger.info("checkpoint of %d not yet cosigned enough: %s", _size_of(note), exc.reason)
                accepted = self._load()
                return RoundResult(0 if accepted is None else accepted.checkpoint.size, False, True)
            raise IntegrityError(f"the log's checkpoint does not verify: {exc.reason}\n{note}") from exc
        accepted = self._load() or _Accepted("", verifier.Checkpoint(self.origin, 0, verifier.EMPTY_ROOT), {})
        old = accepted.checkpoint
        if checkpoint.size < old.size or (checkpoint.size == old.size and checkpoint.root_hash != old.root_hash):
            raise self._fork("shrank" if checkpoint.size < old.size else "forked", accepted.note, note)
        if checkpoint.size == old.size:
            return RoundResult(old.size, False)
        frontier = self._extend(old.size, checkpoint.size, accepted.frontier)
        if merkle.root_from_frontier(checkpoint.size, frontier) != checkpoint.root_hash:
            raise self._fork("forked", accepted.note, note)
        self._save(note, checkpoint.size, frontier)
        logger.info("accepted the checkpoint of %d (was %d)", checkpoint.size, old.size)
        return RoundResult(checkpoint.size, True)

    def _extend(self, start: int, size: int, frontier: dict[merkle.Key, bytes]) -> dict[merkle.Key, bytes]:
        """The frontier of ``size`` leaves: the accepted one with leaves ``[start, size)`` appended."""
        position = start
        for leaves in self._leaf_batches(start, size):
            _, frontier = merkle.append_batch(position, leaves, frontier)
            position += len(leaves)
        return frontier

    def _leaf_batches(self, start: int, size: int) -> Iterator[list[bytes]]:
        """Leaf hashes ``[start, size)`` from level-0 tiles (and checked against entry bundles, with a token)."""
        first, last = start // TILE_WIDTH, -(-size // TILE_WIDTH)
        with concurrent.futures.ThreadPoolExecutor(_PARALLEL_FETCHES) as pool:
            for batch in range(first, last, _TILES_PER_BATCH):
                indexes = range(batch, min(batch + _TILES_PER_BATCH, last))
                tiles = list(pool.map(lambda index: self._leaves_of_tile(index, size), indexes))
                leaves = [leaf for tile in tiles for leaf in tile]
                skip = start - batch * TILE_WIDTH if batch == first else 0
                yield leaves[skip:]

    def _leaves_of_tile(self, index: int, size: int) -> list[bytes]:
        request = TileRequest(0, index, tile_width(0, index, size))
        tile = self._get(f"/tile/{tile_path(request)}")
        if len(tile) != request.width * verifier.HASH_SIZE:
            raise IntegrityError(
                f"tile {tile_path(request)} is {len(tile)} bytes, not {request.width * verifier.HASH_SIZE}"
            )
        leaves = [tile[offset : offset + verifier.HASH_SIZE] for offset in range(0, len(tile), verifier.HASH_SIZE)]
        if self._entries:
            bundle = TileRequest(ENTRIES, index, request.width)
            hashed = [verifier.leaf_hash(entry) for entry in _entries(self._get(f"/tile/{tile_path(bundle)}"))]
            if hashed != leaves:
                raise IntegrityError(f"the entries of tile {index} do not hash to its leaves")
        return leaves

    def _get(self, path: str) -> bytes:
        try:
            response = self._http.get(f"{self._url}{path}")
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise DependencyUnavailableError(f"GET {self._url}{path}: {exc}") from exc
        return response.content

    def _fork(self, what: str, accepted: str, offered: str) -> ForkDetected:
        logger.error("the log %s: accepted before:\n%s\noffered now:\n%s", what, accepted, offered)
        return ForkDetected(f"the log {what}: it is not a consistent extension of the checkpoint accepted before")

    def _load(self) -> _Accepted | None:
        path = self._state / _STATE
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            note, size = str(document["checkpoint"]), int(document["size"])
            hashes = [base64.b64decode(item, validate=True) for item in document["frontier"]]
            checkpoint = verifier.verify_checkpoint(note, self._log_keys, self.origin)
            frontier = dict(zip(merkle.frontier_keys(size), hashes, strict=True))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, verifier.VerificationError) as exc:
            raise ConfigurationError(f"cannot read the monitor's state {path}: {exc}") from exc
        if size != checkpoint.size or merkle.root_from_frontier(size, frontier) != checkpoint.root_hash:
            raise ConfigurationError(f"the monitor's state {path} does not hold together")
        return _Accepted(note, checkpoint, frontier)

    def _save(self, note: str, size: int, frontier: dict[merkle.Key, bytes]) -> None:
        hashes = [base64.b64encode(frontier[key]).decode() for key in merkle.frontier_keys(size)]
        document = {"checkpoint": note, "size": size, "frontier": hashes}
        self._state.mkdir(parents=True, exist_ok=True)
        keys.write_atomically(self._state / _STATE, json.dumps(document, indent=1).encode(), 0o644)


def _entries(bundle: bytes) -> Iterator[bytes]:
    """The entries of a tlog-tiles bundle: each a big-endian uint16 length, then that many bytes."""
    position = 0
    while position < len(bundle):
        length = int.from_bytes(bundle[position : position + 2], "big")
        yield bundle[position + 2 : position + 2 + length]
        position += 2 + length


def _size_of(note: str) -> str:
    lines = note.split("\n")
    return lines[1] if len(lines) > 1 else "?"

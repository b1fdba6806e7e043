"""The log's side of witnessing (C2SP tlog-witness): each new checkpoint goes to every witness.

``QERBEROS_WITNESSES`` names the witnesses, a URL and a cosignature/v1 verifier key each. After each
checkpoint round the service calls ``Witnessing.round``: every witness that has not cosigned the newest
checkpoint is sent it (all at once, each call bounded by ``QERBEROS_WITNESS_TIMEOUT``), with the size it
last cosigned and a consistency proof from that size, computed from the log's own tiles
(``models/tile_proofs.py``), as any tlog-tiles client would. A 409 names the witness's size: the request is
made again once from there. A cosignature is kept (``models/cosignatures.py``) only after it verifies with
the witness's key; lines by other keys are ignored. A witness that is down or refuses is logged and tried
again next round: the lag metric (``qerberos_witness_lag_seconds``) and its alert say how far behind it is.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import logging
from collections.abc import Sequence

import anyio.to_thread
import httpx

from models.cosignatures import CosignatureStore
from models.ledger import Ledger
from models.tile_proofs import TiledTree
from models.tiles import TileReader
from qerberos import verifier

__all__ = ["Witnessing", "submission"]

logger = logging.getLogger(__name__)

_TLOG_SIZE = "text/x.tlog.size"
_ATTEMPTS = 2  # the first, and one from the size a 409 named


@dataclasses.dataclass(frozen=True, slots=True)
class _Witness:
    url: str
    verifier_key: str
    name: str


def submission(old_size: int, proof: Sequence[bytes], note: str) -> bytes:
    """The body of ``POST <witness>/add-checkpoint``: the old size line, the proof lines, a blank line, the note."""
    lines = [f"old {old_size}\n", *(f"{base64.b64encode(node).decode()}\n" for node in proof), "\n"]
    return ("".join(lines) + note).encode()


class Witnessing:
    """Submits the log's newest checkpoint to its witnesses and keeps the cosignatures they return."""

    def __init__(self, witnesses: Sequence[tuple[str, str]], timeout: float) -> None:
        self._witnesses = [
            _Witness(url, key, verifier.parse_verifier_key(key, verifier.ALG_COSIGNATURE_V1).name)
            for url, key in witnesses
        ]
        self._client = httpx.AsyncClient(timeout=timeout)  # keeps connections alive between rounds

    @property
    def names(self) -> list[str]:
        return [witness.name for witness in self._witnesses]

    async def aclose(self) -> None:
        await self._client.aclose()

    async def round(self, ledger: Ledger) -> None:
        """Bring every witness up to the newest checkpoint; never raises for a witness's failure."""
        store = CosignatureStore(ledger.engine)
        newest = await anyio.to_thread.run_sync(store.newest)
        if newest is None or not self._witnesses:
            return
        size, note = newest
        cosigned = await anyio.to_thread.run_sync(store.sizes)
        behind = [witness for witness in self._witnesses if cosigned.get(witness.name, -1) < size]
        await asyncio.gather(
            *(self._bring_up(ledger, witness, cosigned.get(witness.name, 0), size, note) for witness in behind)
        )

    async def _bring_up(self, ledger: Ledger, witness: _Witness, old: int, size: int, note: str) -> None:
        try:
            for _ in range(_ATTEMPTS):
                body = await anyio.to_thread.run_sync(_submission_from_tiles, ledger, old, size, note)
                response = await self._client.post(f"{witness.url}/add-checkpoint", content=body)
                if response.status_code == 409 and response.headers.get("content-type", "").startswith(_TLOG_SIZE):
                    old = int(response.text.strip())
                    if old > size:
                        logger.warning(
                            "witness %s holds a tree of %d leaves, larger than ours of %d", witness.name, old, size
                        )
                        return
                    continue
                if response.status_code != 200:
                    logger.warning(
                        "witness %s refused the checkpoint of %d: %d %s",
                        witness.name,
                        size,
                        response.status_code,
                        response.text.strip()[:200],
                    )
                    return
                kept = _verified_lines(note, response.text, witness)
                await anyio.to_thread.run_sync(CosignatureStore(ledger.engine).add, size, kept)
                return
        except (httpx.HTTPError, ValueError, verifier.VerificationError) as exc:
            logger.warning("witness %s: the checkpoint of %d is not cosigned: %s", witness.name, size, exc)


def _submission_from_tiles(ledger: Ledger, old: int, size: int, note: str) -> bytes:
    proof = TiledTree(TileReader(ledger.engine).read, size).consistency_proof(old) if old else []
    return submission(old, proof, note)


def _verified_lines(note: str, answer: str, witness: _Witness) -> list[tuple[verifier.Cosignature, str]]:
    """The answer's lines by the witness's key, each verified on the note; other keys' lines are ignored."""
    kept = []
    for line in answer.splitlines():
        try:
            (cosignature,) = verifier.verify_cosignatures(f"{note}{line}\n", [witness.verifier_key], 1)
        except verifier.NoteVerificationError as exc:
            if exc.problem == "quorum":  # a line by another key: not this witness's
                continue
            raise
        kept.append((cosignature, f"{line}\n"))
    if not kept:
        raise verifier.VerificationError("the answer holds no cosignature by the witness's key")
    return kept

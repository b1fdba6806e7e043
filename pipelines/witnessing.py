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
        """Bring every witness up to the newest checkpoint; never raises for a witness's failure.

        Witnesses that last cosigned the same size get the same body (one proof, read once), all are sent at
        once, and the cosignatures gathered are stored in one transaction."""
        store = CosignatureStore(ledger.engine)
        newest = await anyio.to_thread.run_sync(store.newest)
        if newest is None or not self._witnesses:
            return
        size, note = newest
        cosigned = await anyio.to_thread.run_sync(store.sizes)
        pending = {
            witness: cosigned.get(witness.name, 0)
            for witness in self._witnesses
            if cosigned.get(witness.name, -1) < size
        }
        kept: list[tuple[verifier.Cosignature, str]] = []
        for _ in range(_ATTEMPTS):
            if not pending:
                break
            bodies = await anyio.to_thread.run_sync(_submissions, ledger, set(pending.values()), size, note)
            answers = await asyncio.gather(
                *(self._submit(witness, size, bodies[old]) for witness, old in pending.items())
            )
            pending = {}
            for witness, answer in answers:
                if isinstance(answer, int):
                    pending[witness] = answer  # a 409: again, from the size the witness holds
                else:
                    kept.extend(_verified_lines(note, answer, witness) if answer is not None else [])
        if kept:
            await anyio.to_thread.run_sync(store.add, size, kept)

    async def _submit(self, witness: _Witness, size: int, body: bytes) -> tuple[_Witness, str | int | None]:
        """The witness's answer: its cosignature lines, the size a 409 names, or None (refused, logged)."""
        try:
            response = await self._client.post(f"{witness.url}/add-checkpoint", content=body)
            if response.status_code == 409 and response.headers.get("content-type", "").startswith(_TLOG_SIZE):
                held = int(response.text.strip())
                if held <= size:
                    return witness, held
                logger.warning("witness %s holds a tree of %d leaves, larger than ours of %d", witness.name, held, size)
            elif response.status_code == 200:
                return witness, response.text
            else:
                logger.warning(
                    "witness %s refused the checkpoint of %d: %d %s",
                    witness.name, size, response.status_code, response.text.strip()[:200],
                )  # fmt: skip
        except (httpx.HTTPError, ValueError) as exc:
            logger.warning("witness %s: the checkpoint of %d is not cosigned: %s", witness.name, size, exc)
        return witness, None


def _submissions(ledger: Ledger, old_sizes: set[int], size: int, note: str) -> dict[int, bytes]:
    """The body for each old size, the proofs computed from the log's own tiles (each tile read once)."""
    tree = TiledTree(TileReader(ledger.engine).read, size)
    return {old: submission(old, tree.consistency_proof(old), note) for old in old_sizes}


def _verified_lines(note: str, answer: str, witness: _Witness) -> list[tuple[verifier.Cosignature, str]]:
    """The answer's lines by the witness's key, each verified on the note; lines by other keys are ignored,
    and an answer with a line of its key that does not verify is dropped whole (and logged)."""
    kept = []
    for line in answer.splitlines():
        try:
            (cosignature,) = verifier.verify_cosignatures(f"{note}{line}\n", [witness.verifier_key], 1)
        except verifier.NoteVerificationError as exc:
            if exc.problem == "quorum":  # a line by another key: not this witness's
                continue
            logger.warning("witness %s answered a cosignature that does not verify: %s", witness.name, exc.reason)
            return []
        kept.append((cosignature, f"{line}\n"))
    if not kept:
        logger.warning("witness %s answered no cosignature by its key", witness.name)
    return kept

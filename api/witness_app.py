"""The witness's own small app (``qerberos witness serve``): nothing of the log's API, no authentication.

C2SP tlog-witness asks for none: a submission is trusted for what the log's signature and the consistency
proof show, and the witness's answers are public. Bodies are capped (a checkpoint and 63 proof lines fit
in a few kilobytes).
"""

from __future__ import annotations

from litestar import Litestar

from api.controllers.witness import WitnessController
from api.errors import WITNESS_EXCEPTION_HANDLERS
from models.witness import Witness

MAX_SUBMISSION_BYTES = 64 * 1024


def create_witness_app(witness: Witness) -> Litestar:
    app = Litestar(
        route_handlers=[WitnessController],
        exception_handlers=WITNESS_EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        request_max_body_size=MAX_SUBMISSION_BYTES,
        openapi_config=None,
        logging_config=None,
        debug=False,
    )
    app.state.witness = witness
    return app

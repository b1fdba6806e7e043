"""What the simulated Q ecosystem is made of: modules (``layer``), their event types, places and devices.

Everything here is a constant; the generators in this package pick from these tables by index.

Naming conventions: each module runs as several instances, and each instance names its events in one of
``CONVENTIONS`` (``download``, ``file.downloaded`` or ``FileDownloaded``; ``login``, ``session.login`` or
``UserLoggedIn``). Every identity is served by one instance of each module (``Identity.naming``), so the same
kind of event reaches qerberos under several names and only the taxonomy (``config/taxonomy.toml``) says what it
is; every name here is one the taxonomy classifies as it classifies the kind's first name.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True, slots=True)
class EventKind:
    """One event type of a module: ``weight`` is its share of that module's normal traffic."""

    type: str
    weight: float
    ref_kind: str  # which pool the ref comes from (see ``population.RefPools``)
    size_mean: float  # mean of ``details.size_bytes`` (log-normal)
    aliases: tuple[str, str]  # the type's name in the dotted and the Pascal convention
    admin_only: bool = False

    def name(self, convention: int) -> str:
        """The type's name in ``CONVENTIONS[convention]``."""
        return (self.type, *self.aliases)[convention]


#: How a module instance names its events: ``EventKind.name`` of each index.
CONVENTIONS: tuple[str, ...] = ("snake_case", "dotted.past_tense", "PascalPastTense")


LAYERS: dict[str, tuple[EventKind, ...]] = {
    "qdrive": (
        EventKind("access", 0.45, "file", 2e3, ("file.accessed", "FileAccessed")),
        EventKind("download", 0.25, "file", 2e6, ("file.downloaded", "FileDownloaded")),
        EventKind("upload", 0.15, "file", 2e6, ("file.uploaded", "FileUploaded")),
        EventKind("share", 0.10, "file", 5e2, ("file.shared", "FileShared")),
        EventKind("delete", 0.05, "file", 2e2, ("file.deleted", "FileDeleted")),
    ),
    "qwallet": (
        EventKind("payment", 0.5, "wallet", 3e2, ("wallet.payment.sent", "PaymentSent")),
        EventKind("transfer", 0.3, "wallet", 3e2, ("wallet.transfer", "FundsTransferred")),
        EventKind("balance_check", 0.2, "own_wallet", 1e2, ("wallet.balance.get", "BalanceChecked")),
    ),
    "qmail": (
        EventKind("read", 0.5, "mail", 8e3, ("mail.read", "MailRead")),
        EventKind("send", 0.4, "mail", 8e3, ("mail.sent", "MailSent")),
        EventKind("delete", 0.1, "mail", 2e2, ("mail.deleted", "MailDeleted")),
    ),
    "qmarket": (
        EventKind("listing_view", 0.6, "listing", 1e3, ("listing.viewed", "ListingViewed")),
        EventKind("purchase", 0.2, "listing", 5e2, ("order.purchased", "PurchaseCompleted")),
        EventKind("listing_create", 0.2, "listing", 2e3, ("listing.created", "ListingCreated")),
    ),
    "qchat": (
        EventKind("message", 0.8, "room", 4e2, ("chat.message.posted", "MessagePosted")),
        EventKind("join_room", 0.2, "room", 1e2, ("room.joined", "RoomJoined")),
    ),
    "qsocial": (
        EventKind("post", 0.3, "post", 1e3, ("social.post.created", "PostPublished")),
        EventKind("comment", 0.3, "post", 4e2, ("comment.added", "CommentAdded")),
        EventKind("like", 0.4, "post", 1e2, ("post.liked", "PostLiked")),
    ),
    "dao": (
        EventKind("vote", 0.7, "proposal", 2e2, ("proposal.voted", "VoteCast")),
        EventKind("proposal_create", 0.15, "proposal", 3e3, ("proposal.created", "ProposalCreated")),
        EventKind(
            "admin_operation",
            0.15,
            "dao_admin",
            5e2,
            ("dao.admin.operation", "AdminOperationPerformed"),
            admin_only=True,
        ),
    ),
    "qonsent": (
        EventKind("permission_check", 0.7, "consent", 1e2, ("permission.checked", "PermissionChecked")),
        EventKind("permission_grant", 0.2, "consent", 2e2, ("consent.granted", "ConsentGranted")),
        EventKind("permission_revoke", 0.1, "consent", 2e2, ("consent.revoked", "ConsentRevoked")),
    ),
    "squid": (
        EventKind("authentication", 0.6, "identity", 2e2, ("auth.signin", "UserAuthenticated")),
        EventKind("login", 0.3, "identity", 2e2, ("session.login", "UserLoggedIn")),
        EventKind("identity_update", 0.1, "identity", 5e2, ("identity.updated", "IdentityUpdated")),
    ),
}
LAYER_NAMES: tuple[str, ...] = tuple(LAYERS)
#: Every (layer, type) pair gets one global code; ``KINDS[code]`` is ``(layer_index, EventKind)``.
KINDS: tuple[tuple[int, EventKind], ...] = tuple(
    (layer_index, kind) for layer_index, kinds in enumerate(LAYERS.values()) for kind in kinds
)
KIND_CODE: dict[tuple[str, str], int] = {
    (LAYER_NAMES[layer_index], kind.type): code for code, (layer_index, kind) in enumerate(KINDS)
}

#: (country, UTC offset in hours, first two octets of its addresses)
COUNTRIES: tuple[tuple[str, int, str], ...] = (
    ("DE", 1, "84.128"),
    ("FR", 1, "90.12"),
    ("ES", 1, "83.44"),
    ("GB", 0, "81.2"),
    ("US", -5, "73.162"),
    ("CA", -5, "24.48"),
    ("BR", -3, "177.34"),
    ("MX", -6, "187.190"),
    ("IN", 5, "117.200"),
    ("JP", 9, "126.20"),
    ("AU", 10, "110.140"),
    ("NG", 1, "105.112"),
)
#: Places attackers come from (never anyone's home in the simulation).
ATTACK_COUNTRIES: tuple[tuple[str, str], ...] = (("RU", "95.24"), ("KP", "175.45"), ("VN", "14.160"), ("RO", "5.2"))
DEVICES: tuple[str, ...] = (
    "web-firefox",
    "web-chrome",
    "web-safari",
    "android-app",
    "ios-app",
    "desktop-linux",
    "desktop-macos",
)
ATTACK_DEVICES: tuple[str, ...] = ("python-requests", "curl", "headless-chrome")

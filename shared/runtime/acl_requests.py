"""ACLs on the broker: described, created and deleted over Kafka's own wire protocol (fence on aiokafka 0.14.0).

aiokafka 0.14 knows only versions 0 and 1 of CreateAcls, DescribeAcls and DeleteAcls, which Kafka 4 removed
(KIP-896), so the flexible versions 2 and 3 (the only ones a 4.x broker serves) are declared here with aiokafka's
own request machinery and sent through an admin client of shared.runtime.kafka, TLS and SASL included. The
alternative, Kafka's AclCommand, starts a JVM per principal and operation set (tens of seconds per broker
start); this sends every binding in one request. Brokers forward these requests to the controller.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import CompactArray, CompactString, Int8, Int16, Int32, Schema, TaggedFields

from shared.runtime.acls import AclBinding
from shared.runtime.kafka import admin
from shared.runtime.settings import KafkaSettings

CREATE_ACLS, DESCRIBE_ACLS, DELETE_ACLS = 30, 29, 31
RESOURCES = {"ANY": 1, "TOPIC": 2, "GROUP": 3, "CLUSTER": 4, "TRANSACTIONAL_ID": 5, "DELEGATION_TOKEN": 6, "USER": 7}
OPERATIONS = {
    "ANY": 1,
    "ALL": 2,
    "READ": 3,
    "WRITE": 4,
    "CREATE": 5,
    "DELETE": 6,
    "ALTER": 7,
    "DESCRIBE": 8,
    "CLUSTER_ACTION": 9,
    "DESCRIBE_CONFIGS": 10,
    "ALTER_CONFIGS": 11,
    "IDEMPOTENT_WRITE": 12,
    "CREATE_TOKENS": 13,
    "DESCRIBE_TOKENS": 14,
}
ANY_PATTERN, LITERAL, PREFIXED = 1, 3, 4
PATTERNS = {"LITERAL": LITERAL, "PREFIXED": PREFIXED}
_PATTERN_NAMES = {code: name for name, code in PATTERNS.items()}
ANY_PERMISSION, DENY, ALLOW = 1, 2, 3
_RESOURCE_NAMES = {code: name for name, code in RESOURCES.items()}
_OPERATION_NAMES = {code: name for name, code in OPERATIONS.items()}
_STR = CompactString("utf-8")
_ERROR = (("error_code", Int16), ("error_message", _STR))


class AclRequestFailed(RuntimeError):
    """The broker refused an ACL request or one of its entries (the error code and message say why)."""


@dataclass(frozen=True)
class AclEntry:
    """An ACL as the broker holds it (any pattern, host and permission, unlike the ALLOW-only AclBinding)."""

    resource: int
    name: str
    pattern: int
    principal: str
    host: str
    operation: int
    permission: int

    @classmethod
    def of(cls, binding: AclBinding) -> AclEntry:
        return cls(
            RESOURCES[binding.resource],
            binding.name,
            PATTERNS[binding.pattern],
            f"User:{binding.principal}",
            "*",
            OPERATIONS[binding.operation],
            ALLOW,
        )

    def binding(self) -> AclBinding | None:
        """The AclBinding this is, or None when it is not one (a DENY, a match pattern, a host, not a user)."""
        plain = self.pattern in _PATTERN_NAMES and self.host == "*" and self.permission == ALLOW
        if not plain or not self.principal.startswith("User:"):
            return None
        resource, operation = _RESOURCE_NAMES.get(self.resource), _OPERATION_NAMES.get(self.operation)
        principal = self.principal.removeprefix("User:")
        return AclBinding(principal, resource, self.name, operation, _PATTERN_NAMES[self.pattern])

    @property
    def user(self) -> str:
        return self.principal.removeprefix("User:")

    def __str__(self) -> str:
        return str(self.binding() or self)


# --- the wire: versions 2 and 3 are both flexible and have the same fields (3 adds the USER resource type) ---

_ACL = (("principal", _STR), ("host", _STR), ("operation", Int8), ("permission_type", Int8))
_FILTER = (
    ("resource_type", Int8),
    ("resource_name", _STR),
    ("pattern_type", Int8),
    *_ACL,
)


class _CreateAclsResponse(Response):
    API_KEY = CREATE_ACLS
    API_VERSION = 2
    SCHEMA = Schema(
        ("throttle_time_ms", Int32), ("results", CompactArray(*_ERROR, ("tags", TaggedFields))), ("tags", TaggedFields)
    )


class _CreateAclsRequest(RequestStruct):
    FLEXIBLE_VERSION = True
    API_KEY = CREATE_ACLS
    API_VERSION = 2
    RESPONSE_TYPE = _CreateAclsResponse
    SCHEMA = Schema(("creations", CompactArray(*_FILTER, ("tags", TaggedFields))), ("tags", TaggedFields))


class _DescribeAclsResponse(Response):
    API_KEY = DESCRIBE_ACLS
    API_VERSION = 2
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        *_ERROR,
        (
            "resources",
            CompactArray(
                ("resource_type", Int8),
                ("resource_name", _STR),
                ("pattern_type", Int8),
                ("acls", CompactArray(*_ACL, ("tags", TaggedFields))),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class _DescribeAclsRequest(RequestStruct):
    FLEXIBLE_VERSION = True
    API_KEY = DESCRIBE_ACLS
    API_VERSION = 2
    RESPONSE_TYPE = _DescribeAclsResponse
    SCHEMA = Schema(*_FILTER, ("tags", TaggedFields))


class _DeleteAclsResponse(Response):
    API_KEY = DELETE_ACLS
    API_VERSION = 2
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "filter_results",
            CompactArray(
                *_ERROR,
                ("matching_acls", CompactArray(*_ERROR, *_FILTER, ("tags", TaggedFields))),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class _DeleteAclsRequest(RequestStruct):
    FLEXIBLE_VERSION = True
    API_KEY = DELETE_ACLS
    API_VERSION = 2
    RESPONSE_TYPE = _DeleteAclsResponse
    SCHEMA = Schema(("filters", CompactArray(*_FILTER, ("tags", TaggedFields))), ("tags", TaggedFields))


class _Describe(Request[_DescribeAclsRequest]):
    API_KEY = DESCRIBE_ACLS

    def __init__(self, *fields: object) -> None:
        self._fields = fields

    def build(self, request_struct_class: type[_DescribeAclsRequest]) -> _DescribeAclsRequest:
        return request_struct_class(*self._fields)


class _Create(Request[_CreateAclsRequest]):
    API_KEY = CREATE_ACLS

    def __init__(self, *fields: object) -> None:
        self._fields = fields

    def build(self, request_struct_class: type[_CreateAclsRequest]) -> _CreateAclsRequest:
        return request_struct_class(*self._fields)


class _Delete(Request[_DeleteAclsRequest]):
    API_KEY = DELETE_ACLS

    def __init__(self, *fields: object) -> None:
        self._fields = fields

    def build(self, request_struct_class: type[_DeleteAclsRequest]) -> _DeleteAclsRequest:
        return request_struct_class(*self._fields)


def _row(entry: AclEntry) -> tuple:
    fields = (entry.resource, entry.name, entry.pattern, entry.principal, entry.host, entry.operation, entry.permission)
    return (*fields, {})


async def _send(settings: KafkaSettings, request: Request) -> Response:
    async with admin(settings, "acls") as client:
        return await client._send_request(request)  # the fence: aiokafka's admin sends any Request


def _check(code: int, message: str | None, what: str) -> None:
    if code:
        raise AclRequestFailed(f"{what}: Kafka error {code} {message or ''}".strip())


# --- the operations ---------------------------------------------------------------------------------------------


async def describe_acls(settings: KafkaSettings) -> list[AclEntry]:
    """Every ACL on the cluster (needs Describe on the cluster: the admin principal)."""
    everything = (RESOURCES["ANY"], None, ANY_PATTERN, None, None, OPERATIONS["ANY"], ANY_PERMISSION, {})
    response = await _send(settings, _Describe(*everything))
    _check(response.error_code, response.error_message, "describing ACLs")
    return sorted(
        (
            AclEntry(resource, name, pattern, *acl[:4])
            for resource, name, pattern, acls, _ in response.resources
            for acl in acls
        ),
        key=str,
    )


async def create_acls(settings: KafkaSettings, entries: Iterable[AclEntry]) -> None:
    """Create these ACLs in one request (an ACL that exists already is left as it is)."""
    rows = [_row(e) for e in entries]
    if not rows:
        return
    response = await _send(settings, _Create(rows, {}))
    for row, (code, message, _) in zip(rows, response.results, strict=True):
        _check(code, message, f"creating ACL {row[:7]}")


async def delete_acls(settings: KafkaSettings, entries: Iterable[AclEntry]) -> None:
    """Delete exactly these ACLs in one request."""
    rows = [_row(e) for e in entries]
    if not rows:
        return
    response = await _send(settings, _Delete(rows, {}))
    for row, (code, message, *_) in zip(rows, response.filter_results, strict=True):
        _check(code, message, f"deleting ACL {row[:7]}")


@dataclass
class AclChanges:
    """What `apply_acls` did."""

    created: list[AclEntry]
    deleted: list[AclEntry]
    kept: int


async def apply_acls(settings: KafkaSettings, wanted: Iterable[AclBinding], managed: Iterable[str]) -> AclChanges:
    """Make the ACLs of the `managed` principals exactly `wanted`: create what is missing, delete what is not
    wanted (another principal's ACLs are left alone). Idempotent."""
    target = {AclEntry.of(b) for b in wanted}
    users = set(managed) | {e.user for e in target}
    have = {e for e in await describe_acls(settings) if e.user in users}
    missing, stale = sorted(target - have, key=str), sorted(have - target, key=str)
    await create_acls(settings, missing)
    await delete_acls(settings, stale)
    return AclChanges(missing, stale, len(have & target))

"""cdk-nag (AwsSolutions pack, 3.x validation plugin) acknowledgments.

Each acknowledgment names one rule (granular finding ids included, e.g. the exact wildcard resource),
is attached to the narrowest construct that produces the finding, and carries the reason a reviewer
would accept. Constructs acknowledge what their own design implies (``HouseFunction``: log streams);
stacks acknowledge what their grants imply (GSI queries need ``table/index/*``).
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, CfnResource, Stack, Validations
from constructs import IConstruct

PACK = "AwsSolutions"


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge ``rule`` (e.g. ``IAM5[Resource::*]``) on ``scope`` and everything below it."""
    Validations.of(scope).acknowledge(Acknowledgment(id=f"{PACK}::{PACK}-{rule}", reason=reason))


def ref(resource: IConstruct, attribute: str) -> str:
    """How cdk-nag spells ``Fn::GetAtt`` of a resource inside a granular finding: ``<LogicalId.Attr>``."""
    default = resource.node.default_child if not isinstance(resource, CfnResource) else resource
    assert isinstance(default, CfnResource), resource.node.path
    logical_id = Stack.of(default).resolve(default.logical_id)
    return f"<{logical_id}.{attribute}>"

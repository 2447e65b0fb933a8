"""An SQS queue (and its dead-letter queue) as ``contract.topology`` describes it: encrypted, TLS only."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from contract.topology import QueueSpec
from infra.nag import acknowledge


def _queue(scope: Construct, construct_id: str, spec: QueueSpec, dlq: sqs.IQueue | None) -> sqs.Queue:
    return sqs.Queue(
        scope,
        construct_id,
        queue_name=spec.name,
        visibility_timeout=Duration.seconds(spec.visibility_timeout_s),
        retention_period=Duration.seconds(spec.retention_s),
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        dead_letter_queue=(
            sqs.DeadLetterQueue(queue=dlq, max_receive_count=spec.max_receive_count) if dlq else None
        ),
    )


class TopologyQueue(Construct):
    """Exposes ``queue`` and ``dead_letter_queue`` (None when the spec has none)."""

    def __init__(
        self, scope: Construct, construct_id: str, *, spec: QueueSpec, dead_letter_for: str | None = None
    ) -> None:
        """``dead_letter_for``: set when this queue is itself a dead-letter destination (says of what)."""
        super().__init__(scope, construct_id)
        self.spec = spec
        self.dead_letter_queue: sqs.Queue | None = (
            _queue(self, "DeadLetterQueue", spec.dead_letter, None) if spec.dead_letter else None
        )
        self.queue = _queue(self, "Queue", spec, self.dead_letter_queue)
        if dead_letter_for and not spec.dead_letter:
            acknowledge(
                self.queue,
                "SQS3",
                f"This queue is the dead-letter destination of {dead_letter_for}; nothing consumes it "
                "automatically, so a DLQ behind it could never receive anything. An alarm fires when it "
                "is not empty.",
            )

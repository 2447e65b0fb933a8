"""An alerts SNS topic: a customer-managed KMS key of its own, TLS only, CloudWatch alarms may publish.

Two are deployed: the fleet alerts (the monitor's incidents, the service's alarms) and the monitor's
own health (alarms on the monitor itself), so one broken key policy cannot silence both. The fleet
alerts topic also delivers to a receipts queue: the monitor reads what SNS delivered before it
publishes again (`monitor.receipts`), so a run that dies after a publish sends nothing twice."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from contract.topology import QueueSpec
from infra.constructs.queue import TopologyQueue
from infra.nag import acknowledge


class AlertsTopic(Construct):
    """Exposes ``topic``, ``key`` and ``receipts`` (the receipts queue, when asked for). E-mail
    subscribers read it."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        topic_name: str,
        display_name: str,
        emails: Sequence[str],
        removal_policy: RemovalPolicy,
        receipts: QueueSpec | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        account = Stack.of(self).account
        self.key = kms.Key(
            self,
            "Key",
            alias=f"alias/{topic_name}",
            description=f"Encrypts the {topic_name} SNS topic",
            enable_key_rotation=True,
            removal_policy=removal_policy,
        )
        # CloudWatch alarms publish as the cloudwatch.amazonaws.com service: it needs the data key.
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsToUseTheKey",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],  # in a key policy "*" means this key
                conditions={"StringEquals": {"aws:SourceAccount": account}},
            )
        )
        self.topic = sns.Topic(
            self,
            "Topic",
            topic_name=topic_name,
            display_name=display_name,
            master_key=self.key,
            enforce_ssl=True,
        )
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsToPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={"StringEquals": {"aws:SourceAccount": account}},
            )
        )
        for address in emails:
            self.topic.add_subscription(subscriptions.EmailSubscription(address))
        self.receipts: TopologyQueue | None = None
        if receipts is not None:
            self.receipts = TopologyQueue(self, "Receipts", spec=receipts)
            # The SNS envelope is kept (no raw delivery): it carries SNS's MessageId.
            self.topic.add_subscription(subscriptions.SqsSubscription(self.receipts.queue))
            acknowledge(
                self.receipts.queue,
                "SQS3",
                "Delivery receipts: the monitor reads and deletes them every run, and drops a message "
                "that is not an alert; a receipt left unread expires with the queue's retention.",
            )

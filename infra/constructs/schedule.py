"""An EventBridge Scheduler rate schedule that invokes a Lambda alias, with retries and a DLQ.

The target's input is `{"scheduled_time": "<aws.scheduler.scheduled-time>"}`: the function runs at
the time the schedule fired, so a retried invocation does the same work as the first attempt.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as scheduler_targets
from constructs import Construct

from contract.topology import SCHEDULED_TIME_FIELD, QueueSpec
from infra.constructs.queue import TopologyQueue


class RateSchedule(Construct):
    """Exposes ``schedule`` and ``dead_letter_queue`` (invocations Scheduler could not deliver)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        schedule_name: str,
        target: lambda_.IFunction,
        every: Duration,
        dead_letter: QueueSpec,
        retry_attempts: int = 2,
    ) -> None:
        super().__init__(scope, construct_id)
        self.dead_letter_queue = TopologyQueue(
            self, "DeadLetter", spec=dead_letter, dead_letter_for=f"the {schedule_name} schedule"
        ).queue
        self.schedule = scheduler.Schedule(
            self,
            "Schedule",
            schedule_name=schedule_name,
            description=f"Invoke {target.function_name} every {every.to_human_string()}",
            schedule=scheduler.ScheduleExpression.rate(every),
            target=scheduler_targets.LambdaInvoke(
                target,
                dead_letter_queue=self.dead_letter_queue,
                retry_attempts=retry_attempts,
                input=scheduler.ScheduleTargetInput.from_object(
                    {SCHEDULED_TIME_FIELD: scheduler.ContextAttribute.scheduled_time}
                ),
                # A run older than one period is superseded by the next one: do not pile up.
                max_event_age=every,
            ),
        )

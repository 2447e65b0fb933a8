"""What AWS does around the functions, played locally against the emulator.

`provision` (the stage's resources), `runtime` + `lambda_worker` (Lambda execution environments),
`gateway` (API Gateway REST proxy), `event_source` (the SQS event source mapping), `stream_source`
(the DynamoDB-stream event source mapping), `telemetry` (EMF → CloudWatch metrics, logs → CloudWatch
Logs), `xray` (the X-Ray daemon), `scheduler` (the event EventBridge Scheduler delivers), `hooks`
(the fault hook the runtime asks before every invocation) and `inbox` (an SQS queue subscribed to
the alerts topic, as an operator's e-mail would be). It builds on `sandbox.emulator` only for the
emulator's address and never patches moto.
"""

"""The AWS emulator: the moto server process (`server`) and every change the sandbox makes to moto.

Everything that patches moto lives here and runs only inside the emulator process: the indexed
CloudWatch metric store (`metric_store`, served by `extensions`), SQS without per-message clock reads
(`sqs_fixes`), serialized DynamoDB data operations (`moto_fixes`) and the AWS/SQS metrics SQS would
publish (`sqs_metrics`). It imports no other part of the sandbox but its settings (`sandbox.home.settings`).
"""

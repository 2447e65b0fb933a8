"""The emulator process never outlives its owner."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from sandbox.emulator.server import Emulator
from sandbox.home.state import pid_alive

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.integration
@pytest.mark.slow
def test_emulator_stops_when_its_owner_is_killed() -> None:
    # Given an owner process that started an emulator in its own session (as the sandbox does)
    code = (
        "from sandbox.emulator.server import Emulator\n"
        "emulator = Emulator(port=0, own_session=True).start()\n"
        "print(emulator.pid, flush=True)\n"
        "import time; time.sleep(120)\n"
    )
    owner = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert owner.stdout is not None
    emulator_pid = int(owner.stdout.readline())
    assert pid_alive(emulator_pid)
    # When the owner dies without stopping it
    os.kill(owner.pid, signal.SIGKILL)
    owner.wait()
    # Then the emulator stops by itself
    deadline = time.monotonic() + 60
    while pid_alive(emulator_pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    alive = pid_alive(emulator_pid)
    if alive:
        os.kill(emulator_pid, signal.SIGKILL)
    assert not alive


@pytest.mark.integration
def test_the_emulator_answers_no_cross_origin_request(emulator: Emulator) -> None:
    # Given a web page on another origin that reads the emulator's queues (moto's global CORS would let it)
    request = urllib.request.Request(
        f"{emulator.endpoint_url}/?Action=ListQueues", headers={"Origin": "https://evil.example"}
    )
    # When the browser sends it
    with urllib.request.urlopen(request, timeout=10) as response:
        headers = response.headers
    # Then the answer grants the page no access to what it says
    assert "Access-Control-Allow-Origin" not in headers


@pytest.mark.integration
def test_a_transaction_repeated_with_its_client_request_token_is_not_applied_twice(
    emulator: Emulator,
) -> None:
    import uuid

    import boto3
    from botocore.exceptions import ClientError

    ddb = boto3.client("dynamodb", endpoint_url=emulator.endpoint_url, region_name="us-east-1")
    table = f"tokens-{uuid.uuid4().hex[:8]}"
    ddb.create_table(
        TableName=table,
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.put_item(TableName=table, Item={"id": {"S": "car"}, "version": {"N": "1"}})
    bump = [
        {
            "Update": {
                "TableName": table,
                "Key": {"id": {"S": "car"}},
                "UpdateExpression": "SET version = version + :one",
                "ConditionExpression": "version = :expected",
                "ExpressionAttributeValues": {":one": {"N": "1"}, ":expected": {"N": "1"}},
            }
        }
    ]
    # Given a conditional transaction that committed
    ddb.transact_write_items(TransactItems=bump, ClientRequestToken="token-1")
    # When it is sent again with the same token (botocore's retry after a read timeout does exactly this)
    ddb.transact_write_items(TransactItems=bump, ClientRequestToken="token-1")
    # Then it succeeds, as on DynamoDB, without writing again
    assert ddb.get_item(TableName=table, Key={"id": {"S": "car"}})["Item"]["version"] == {"N": "2"}
    # And another token is a new transaction: its condition fails
    with pytest.raises(ClientError) as cancelled:
        ddb.transact_write_items(TransactItems=bump, ClientRequestToken="token-2")
    assert cancelled.value.response["Error"]["Code"] == "TransactionCanceledException"
    # And the same token with other items is refused
    other = [{"Put": {"TableName": table, "Item": {"id": {"S": "other"}}}}]
    with pytest.raises(ClientError) as mismatch:
        ddb.transact_write_items(TransactItems=other, ClientRequestToken="token-1")
    assert mismatch.value.response["Error"]["Code"] == "IdempotentParameterMismatchException"
    ddb.delete_table(TableName=table)


@pytest.mark.integration
def test_a_cancelled_transaction_writes_nothing_and_leaves_no_stream_record(emulator: Emulator) -> None:
    import uuid

    import boto3
    from botocore.exceptions import ClientError

    ddb = boto3.client("dynamodb", endpoint_url=emulator.endpoint_url, region_name="us-east-1")
    streams = boto3.client("dynamodbstreams", endpoint_url=emulator.endpoint_url, region_name="us-east-1")
    table = f"undo-{uuid.uuid4().hex[:8]}"
    arn = ddb.create_table(
        TableName=table,
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    )["TableDescription"]["LatestStreamArn"]
    ddb.put_item(TableName=table, Item={"id": {"S": "car"}, "version": {"N": "1"}, "name": {"S": "x"}})

    def records() -> int:
        shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
        return len(streams.get_records(ShardIterator=iterator["ShardIterator"])["Records"])

    def item(key: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = ddb.get_item(TableName=table, Key={"id": {"S": key}}).get("Item")
        return found

    put_new = {"Put": {"TableName": table, "Item": {"id": {"S": "new"}}}}
    # When a condition fails (the second operation), Then nothing is written, not even the first
    stale = {
        "Update": {
            "TableName": table,
            "Key": {"id": {"S": "car"}},
            "UpdateExpression": "SET version = :two",
            "ConditionExpression": "version = :nine",
            "ExpressionAttributeValues": {":two": {"N": "2"}, ":nine": {"N": "9"}},
        }
    }
    with pytest.raises(ClientError) as cancelled:
        ddb.transact_write_items(TransactItems=[put_new, stale])
    reasons = [r["Code"] for r in cancelled.value.response["CancellationReasons"]]
    assert reasons == ["None", "ConditionalCheckFailed"]
    assert item("new") is None
    assert records() == 1
    # When a write fails after another was made (adding a number to a string), Then both are undone
    bad = {
        "Update": {
            "TableName": table,
            "Key": {"id": {"S": "car"}},
            "UpdateExpression": "SET version = :two, #n = #n + :one",
            "ExpressionAttributeNames": {"#n": "name"},
            "ExpressionAttributeValues": {":two": {"N": "2"}, ":one": {"N": "1"}},
        }
    }
    with pytest.raises(ClientError):
        ddb.transact_write_items(TransactItems=[put_new, bad])
    assert item("new") is None
    assert item("car") == {"id": {"S": "car"}, "version": {"N": "1"}, "name": {"S": "x"}}
    assert records() == 1
    # And a transaction whose conditions hold writes every item, one stream record each
    ok = {**stale["Update"], "ConditionExpression": "version = :one"}
    ok["ExpressionAttributeValues"] = {":two": {"N": "2"}, ":one": {"N": "1"}}
    ddb.transact_write_items(TransactItems=[put_new, {"Update": ok}])
    assert item("new") == {"id": {"S": "new"}}
    assert item("car")["version"] == {"N": "2"}  # type: ignore[index]
    assert records() == 3
    ddb.delete_table(TableName=table)

"""AWS change events, as EventBridge delivers them to SQS, become remote keys or a discard."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from secretsync.events import aws

ACCOUNT = "123456789012"
REGION = "eu-west-1"
ARN = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:team-a/db-AbC123"


def cloudtrail(
    name: str,
    *,
    request: dict[str, Any] | None = None,
    response: dict[str, Any] | None = None,
    account: str = ACCOUNT,
    region: str = REGION,
    source: str = "aws.secretsmanager",
    event_source: str = "secretsmanager.amazonaws.com",
) -> dict[str, Any]:
    """An 'AWS API Call via CloudTrail' event as EventBridge puts it on an SQS queue."""
    return {
        "version": "0",
        "id": "79f04f06-924c-7a00-b3f8-e532167d23e0",
        "detail-type": "AWS API Call via CloudTrail",
        "source": source,
        "account": account,
        "time": "2024-10-23T12:26:45Z",
        "region": region,
        "resources": [],
        "detail": {
            "eventVersion": "1.09",
            "userIdentity": {
                "type": "AssumedRole",
                "arn": f"arn:aws:sts::{account}:assumed-role/rotator/session",
                "accountId": account,
            },
            "eventTime": "2024-10-23T12:26:45Z",
            "eventSource": event_source,
            "eventName": name,
            "awsRegion": region,
            "sourceIPAddress": "203.0.113.7",
            "userAgent": "aws-cli/2.17",
            "requestParameters": request,
            "responseElements": response,
            "requestID": "1d9b5a5e-5b6f-4c1e-9c6e-0b1b2a3c4d5e",
            "eventID": "12345678-1234-1234-1234-123456789012",
            "readOnly": False,
            "eventType": "AwsApiCall",
            "managementEvent": True,
            "recipientAccountId": account,
            "eventCategory": "Management",
        },
    }


def rotation_succeeded(secret_id: str = ARN) -> dict[str, Any]:
    """Secrets Manager's 'AWS Service Event via CloudTrail' for a finished rotation."""
    return {
        "version": "0",
        "id": "dd5fd657-7361-f5d2-0c0f-0fe27390611b",
        "detail-type": "AWS Service Event via CloudTrail",
        "source": "aws.secretsmanager",
        "account": ACCOUNT,
        "time": "2021-08-13T19:17:16Z",
        "region": REGION,
        "resources": [],
        "detail": {
            "eventVersion": "1.08",
            "userIdentity": {"accountId": ACCOUNT, "invokedBy": "secretsmanager.amazonaws.com"},
            "eventTime": "2021-08-13T19:17:16Z",
            "eventSource": "secretsmanager.amazonaws.com",
            "eventName": "RotationSucceeded",
            "awsRegion": REGION,
            "sourceIPAddress": "secretsmanager.amazonaws.com",
            "userAgent": "secretsmanager.amazonaws.com",
            "requestParameters": None,
            "responseElements": None,
            "additionalEventData": {"SecretId": secret_id},
            "requestID": f"Rotation-{secret_id}-7ac47c8c-f328-423b-9698-6926dd1f293e",
            "eventID": "638c6d2d-e098-4100-a3e0-a4b7b87e5b92",
            "readOnly": False,
            "eventType": "AwsServiceEvent",
            "managementEvent": True,
            "recipientAccountId": ACCOUNT,
            "eventCategory": "Management",
        },
    }


def parameter_change(
    name: str = "/team-a/app/db-password", operation: str = "Update", **extra: Any
) -> dict[str, Any]:
    """SSM's 'Parameter Store Change' event."""
    return {
        "version": "0",
        "id": "9547ef2d-3b7e-4057-b6cb-5fdf09ee7c8f",
        "detail-type": "Parameter Store Change",
        "source": "aws.ssm",
        "account": ACCOUNT,
        "time": "2017-05-22T16:44:48Z",
        "region": REGION,
        "resources": [f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{name}"],
        "detail": {
            "operation": operation,
            "name": name,
            "type": "SecureString",
            "description": "Sample Parameter",
            **extra,
        },
    }


def parse(
    event: Any,
    *,
    service: aws.Service | None = "SecretsManager",
    account: str | None = ACCOUNT,
    region: str = REGION,
) -> aws.Parsed:
    body = event if isinstance(event, str) else json.dumps(event)
    return aws.parse(body, service=service, account=account, region=region)


# --- Secrets Manager ----------------------------------------------------------------------


def test_put_secret_value_names_the_secret_by_its_id_and_full_arn() -> None:
    event = cloudtrail(
        "PutSecretValue",
        request={"secretId": "team-a/db", "clientRequestToken": "4d383ea9-084a-49c9"},
        response={"arn": ARN, "name": "team-a/db", "versionId": "4d383ea9-084a-49c9"},
    )
    assert parse(event) == aws.Changed(keys=("team-a/db", ARN), event="PutSecretValue")


@pytest.mark.parametrize(
    "name",
    [
        "PutSecretValue",
        "UpdateSecret",
        "UpdateSecretVersionStage",
        "RotateSecret",
        "DeleteSecret",
        "RestoreSecret",
    ],
)
def test_each_api_call_that_changes_a_secret_is_understood(name: str) -> None:
    event = cloudtrail(name, request={"secretId": ARN}, response={"arn": ARN})
    assert parse(event) == aws.Changed(keys=(ARN,), event=name)


@pytest.mark.parametrize("spelling", ["aRN", "ARN"])
def test_older_records_spell_the_arn_differently(spelling: str) -> None:
    event = cloudtrail(
        "UpdateSecretVersionStage", request={"secretId": "x"}, response={spelling: ARN}
    )
    result = parse(event)
    assert isinstance(result, aws.Changed)
    assert ARN in result.keys


def test_create_secret_names_the_new_secret() -> None:
    event = cloudtrail(
        "CreateSecret",
        request={"name": "team-a/new", "secretString": "HIDDEN_DUE_TO_SECURITY_REASONS"},
        response={"arn": ARN.replace("db-AbC123", "new-XyZ789"), "name": "team-a/new"},
    )
    result = parse(event)
    assert isinstance(result, aws.Changed)
    assert "team-a/new" in result.keys


def test_rotation_succeeded_names_the_secret_in_additional_event_data() -> None:
    assert parse(rotation_succeeded()) == aws.Changed(keys=(ARN,), event="RotationSucceeded")


def test_rotation_succeeded_with_the_id_under_service_event_details() -> None:
    event = rotation_succeeded()
    del event["detail"]["additionalEventData"]
    event["detail"]["serviceEventDetails"] = {"secretId": ARN}
    assert parse(event) == aws.Changed(keys=(ARN,), event="RotationSucceeded")


def test_the_native_secret_label_updated_event() -> None:
    event = {
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "Secret Label Updated",
        "source": "aws.secretsmanager",
        "account": ACCOUNT,
        "time": "2024-02-06T16:43:48Z",
        "region": REGION,
        "resources": [ARN],
        "detail": {"name": "team-a/db", "labelUpdated": "AWSCURRENT", "versionId": "a1b2c3d4"},
    }
    assert parse(event) == aws.Changed(keys=("team-a/db", ARN), event="Secret Label Updated")


def test_a_cloudtrail_record_s_resources_name_the_secret_but_not_its_kms_key() -> None:
    event = cloudtrail("UpdateSecret", request={"secretId": "team-a/db"}, response=None)
    event["detail"]["resources"] = [
        {
            "accountId": ACCOUNT,
            "type": "AWS::KMS::Key",
            "ARN": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1",
        },
        {"accountId": ACCOUNT, "type": "AWS::SecretsManager::Secret", "ARN": ARN},
    ]
    assert parse(event) == aws.Changed(keys=("team-a/db", ARN), event="UpdateSecret")


@pytest.mark.parametrize(
    "name",
    ["GetSecretValue", "BatchGetSecretValue", "DescribeSecret", "ListSecrets", "TagResource"],
)
def test_reads_and_metadata_calls_are_irrelevant(name: str) -> None:
    event = cloudtrail(name, request={"secretId": ARN}, response=None)
    assert parse(event) == aws.Discarded("irrelevant")


def test_a_call_that_failed_changed_nothing() -> None:
    event = cloudtrail("PutSecretValue", request={"secretId": ARN}, response=None)
    event["detail"]["errorCode"] = "AccessDenied"
    assert parse(event) == aws.Discarded("irrelevant")


def test_rotation_failed_is_irrelevant() -> None:
    event = rotation_succeeded()
    event["detail"]["eventName"] = "RotationFailed"
    assert parse(event) == aws.Discarded("irrelevant")


def test_an_event_of_another_service_is_irrelevant_to_a_store() -> None:
    assert parse(parameter_change(), service="SecretsManager") == aws.Discarded("irrelevant")
    assert parse(rotation_succeeded(), service="ParameterStore") == aws.Discarded("irrelevant")
    assert parse(dict(rotation_succeeded(), source="aws.ec2")) == aws.Discarded("irrelevant")


# --- SSM Parameter Store ------------------------------------------------------------------


def test_parameter_store_change_names_the_parameter_and_its_arn() -> None:
    result = parse(parameter_change(), service="ParameterStore")
    assert result == aws.Changed(
        keys=(
            "/team-a/app/db-password",
            f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/team-a/app/db-password",
        ),
        event="Update",
    )


@pytest.mark.parametrize("operation", ["Create", "Update", "Delete", "LabelParameterVersion"])
def test_every_parameter_operation_is_a_change(operation: str) -> None:
    result = parse(parameter_change(operation=operation), service="ParameterStore")
    assert isinstance(result, aws.Changed)
    assert result.event == operation


def test_a_parameter_arn_is_built_when_the_event_lists_no_resources() -> None:
    event = parameter_change(name="plain")
    event["resources"] = []
    assert parse(event, service="ParameterStore") == aws.Changed(
        keys=("plain", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/plain"), event="Update"
    )


def test_a_failed_parameter_operation_is_irrelevant() -> None:
    event = parameter_change(exception="Unable to Describe Resource")
    assert parse(event, service="ParameterStore") == aws.Discarded("irrelevant")


def test_parameter_api_calls_via_cloudtrail() -> None:
    put = cloudtrail(
        "PutParameter",
        request={"name": "/team-a/x", "value": "HIDDEN_DUE_TO_SECURITY_REASONS"},
        source="aws.ssm",
        event_source="ssm.amazonaws.com",
    )
    assert parse(put, service="ParameterStore") == aws.Changed(
        keys=("/team-a/x",), event="PutParameter"
    )
    delete = cloudtrail(
        "DeleteParameters",
        request={"names": ["/team-a/x", "/team-a/y"]},
        source="aws.ssm",
        event_source="ssm.amazonaws.com",
    )
    assert parse(delete, service="ParameterStore") == aws.Changed(
        keys=("/team-a/x", "/team-a/y"), event="DeleteParameters"
    )
    read = cloudtrail(
        "GetParameter",
        request={"name": "/team-a/x"},
        source="aws.ssm",
        event_source="ssm.amazonaws.com",
    )
    assert parse(read, service="ParameterStore") == aws.Discarded("irrelevant")


# --- envelopes ----------------------------------------------------------------------------


def test_an_sns_notification_wrapping_the_event_is_unwrapped() -> None:
    envelope = {
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:secret-changes",
        "Message": json.dumps(rotation_succeeded()),
        "Timestamp": "2021-08-13T19:17:17.000Z",
    }
    assert parse(envelope) == aws.Changed(keys=(ARN,), event="RotationSucceeded")


# --- discards -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "",
        "not json",
        "{",
        "[]",
        "null",
        '"a string"',
        json.dumps({"source": "aws.secretsmanager"}),
        json.dumps({"Type": "Notification", "Message": "not json"}),
        "[" * 100_000,  # deeper than the JSON parser recurses
    ],
)
def test_malformed_bodies_are_discarded_without_raising(body: str) -> None:
    assert parse(body) == aws.Discarded("malformed")


def test_an_event_without_account_region_or_detail_is_malformed() -> None:
    for field in ("account", "region", "detail", "source", "detail-type"):
        event = rotation_succeeded()
        del event[field]
        assert parse(event) == aws.Discarded("malformed"), field


def test_a_relevant_event_that_names_no_secret_is_malformed() -> None:
    event = cloudtrail("PutSecretValue", request={}, response={})
    assert parse(event) == aws.Discarded("malformed")


def test_a_key_with_control_characters_or_of_absurd_length_is_malformed() -> None:
    assert parse(rotation_succeeded("team-a/db\n")) == aws.Discarded("malformed")
    assert parse(rotation_succeeded("x" * 5000)) == aws.Discarded("malformed")


def test_an_event_of_another_account_is_foreign() -> None:
    event = cloudtrail(
        "PutSecretValue", request={"secretId": "team-a/db"}, response=None, account="210987654321"
    )
    assert parse(event) == aws.Discarded("foreign-account")


def test_an_event_of_another_region_is_foreign() -> None:
    event = cloudtrail(
        "PutSecretValue", request={"secretId": "team-a/db"}, response=None, region="us-east-1"
    )
    assert parse(event) == aws.Discarded("foreign-region")


def test_a_secret_arn_of_another_account_inside_our_own_event_is_foreign() -> None:
    other = ARN.replace(ACCOUNT, "210987654321")
    assert parse(rotation_succeeded(other)) == aws.Discarded("foreign-account")
    # The same holds when the store's account is unknown: the ARN must match the event.
    assert parse(rotation_succeeded(other), account=None) == aws.Discarded("foreign-account")


def test_a_secret_arn_of_another_region_inside_our_own_event_is_foreign() -> None:
    other = ARN.replace(REGION, "us-east-1")
    assert parse(rotation_succeeded(other)) == aws.Discarded("foreign-region")


def test_a_store_of_unknown_account_accepts_any_account_consistently() -> None:
    event = copy.deepcopy(rotation_succeeded(ARN.replace(ACCOUNT, "210987654321")))
    event["account"] = "210987654321"
    assert parse(event, account=None) == aws.Changed(
        keys=(ARN.replace(ACCOUNT, "210987654321"),), event="RotationSucceeded"
    )
    assert parse(event, account=ACCOUNT) == aws.Discarded("foreign-account")


def test_a_parse_result_never_carries_what_the_body_held_besides_keys() -> None:
    secret = "pw-s3cr3t-value-that-must-not-travel"
    event = cloudtrail(
        "PutSecretValue",
        request={"secretId": "team-a/db", "secretString": secret},
        response={"arn": ARN},
    )
    assert secret not in repr(parse(event))
    assert secret not in repr(parse(json.dumps(event)[:-1]))  # truncated: malformed


# --- the store's account ------------------------------------------------------------------


def test_the_store_account_is_that_of_the_last_role_it_assumes() -> None:
    assert aws.store_account(f"arn:aws:iam::{ACCOUNT}:role/team-a-reader") == ACCOUNT
    assert (
        aws.store_account(
            f"arn:aws:iam::{ACCOUNT}:role/hop", ["arn:aws:iam::210987654321:role/reader"]
        )
        == "210987654321"
    )
    assert aws.store_account("arn:aws-cn:iam::123456789012:role/path/r") == ACCOUNT
    assert aws.store_account(None) is None
    assert aws.store_account("not-an-arn") is None

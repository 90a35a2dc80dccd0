"""AWS change events as the operator's queue receives them, for the tests that send them:
the `detail` of a Secrets Manager API call recorded by CloudTrail, and the EventBridge
envelope AWS wraps it in."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

ACCOUNT = "123456789012"
REGION = "eu-west-1"


def cloudtrail_detail(
    name: str,
    request: dict[str, Any],
    response: dict[str, Any] | None,
    *,
    account: str = ACCOUNT,
    region: str = REGION,
) -> dict[str, Any]:
    """The `detail` of an 'AWS API Call via CloudTrail' event of Secrets Manager."""
    return {
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "AssumedRole",
            "arn": f"arn:aws:sts::{account}:assumed-role/rotator/rotation",
            "accountId": account,
        },
        "eventTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "eventSource": "secretsmanager.amazonaws.com",
        "eventName": name,
        "awsRegion": region,
        "sourceIPAddress": "203.0.113.7",
        "userAgent": "aws-cli/2.17",
        "requestParameters": request,
        "responseElements": response,
        "requestID": str(uuid.uuid4()),
        "eventID": str(uuid.uuid4()),
        "readOnly": False,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": account,
        "eventCategory": "Management",
    }


def envelope(
    detail_type: str,
    detail: dict[str, Any],
    *,
    source: str = "aws.secretsmanager",
    account: str = ACCOUNT,
    region: str = REGION,
) -> str:
    """The JSON body an EventBridge rule puts on an SQS queue for one event."""
    return json.dumps(
        {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": detail_type,
            "source": source,
            "account": account,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "region": region,
            "resources": [],
            "detail": detail,
        }
    )

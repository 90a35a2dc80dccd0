"""A recording proxy in front of moto (or OpenBao): what reached the provider, and as whom.

moto does not enforce IAM per resource, so per-namespace isolation is proven by
recording every request: its action, the access key id in its SigV4
Authorization header, and (for STS AssumeRoleWithWebIdentity) the web identity
token. moto's /moto-api/data.json maps the access keys it issued to roles.
The proxy can also be taken down and brought back on the same port, to
simulate an outage without losing moto's state.

The recording proxy is the fault proxy (harness/faultproxy.py) with no fault injected;
this module keeps the name the recording tests use.
"""

from __future__ import annotations

from harness.faultproxy import Call, FaultProxy

__all__ = ["AwsRecordingProxy", "Call"]

AwsRecordingProxy = FaultProxy

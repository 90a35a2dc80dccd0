"""AWS Secrets Manager and SSM Parameter Store."""

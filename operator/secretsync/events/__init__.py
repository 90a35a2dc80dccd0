"""Rotation event sources (SQS, webhook) that turn changes into due syncs."""

"""The sync engine: schedules due syncs, groups them by store identity,
de-duplicates remote keys, renders and writes Secrets."""

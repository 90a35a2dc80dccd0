"""pydantic models of the CRD specs and statuses; no I/O."""

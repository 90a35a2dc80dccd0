"""pydantic models of the CRD specs and statuses, and the values crossing the
provider seam; no I/O."""

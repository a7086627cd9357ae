"""Business operations that span repositories (one transaction each)."""

"""Prefect flows: scheduled and batch work (never the per-message work)."""

import os

# A flow run without PREFECT_API_URL starts Prefect's temporary API server, and Prefect gives it 20 s;
# on a busy 2-core machine its start (database migrations) took longer and the flow failed before it
# ran. Set before Prefect is imported: Prefect reads its settings at import.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

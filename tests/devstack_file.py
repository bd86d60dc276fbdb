"""The repo's own docker-compose.yml (the dev stack): the variables that set its host
ports and the secrets it needs from the environment."""

from __future__ import annotations

from pathlib import Path

DEV_STACK_FILE = Path(__file__).resolve().parent.parent / "docker-compose.yml"
PORT_VARS = (
    "POSTGRES_PORT",
    "REDIS_PORT",
    "AIRTABLE_GATEWAY_PORT",
    "PLATFORM_SERVICES_PORT",
    "MCP_SERVER_PORT",
    "LLM_ORCHESTRATOR_PORT",
    "AUTOMATION_SERVICES_PORT",
    "SAGA_ORCHESTRATOR_PORT",
    "API_GATEWAY_PORT",
    "FRONTEND_PORT",
)
SECRETS = {
    "POSTGRES_PASSWORD": "pg-Secret-1",
    "REDIS_PASSWORD": "redis-Secret-2",
    "AIRTABLE_TOKEN": "at-Secret-3",
    "GEMINI_API_KEY": "gem-Secret-4",
    "API_KEY": "api-Secret-5",
    "JWT_SECRET": "jwt-Secret-6",
    "NEXTAUTH_SECRET": "na-Secret-7",
}

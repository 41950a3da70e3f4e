"""Shared helpers for PSA-style integrations (imported by workflows as `modules.psa`)."""


def ticket_summary(ticket: dict) -> str:
    priority = ticket.get("priority", "normal").upper()
    return f"[{priority}] #{ticket.get('id', '?')}: {ticket.get('subject', '(no subject)')}"


def normalize_upn(first_name: str, last_name: str, domain: str) -> str:
    return f"{first_name}.{last_name}@{domain}".lower().replace(" ", "")

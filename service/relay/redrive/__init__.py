"""`python -m service.relay.redrive`: republish outbox events by time range (see ops.relay_redrive)."""

"""The durable local store (SQLite, WAL): readings, summaries, alarms, outbox."""

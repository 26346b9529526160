"""The store: database access, tables, migrations, hot-path writer, audit trail, ids, secrets at rest, domain events."""

"""One module per export format; `services.ingest.core.parsers` detects which one applies."""

"""Event handlers (SQS-delivered S3 notifications): thin, they call services."""

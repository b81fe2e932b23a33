"""The domain: framework-free services that take and return typed objects."""

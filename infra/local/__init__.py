"""The embedded AWS stack: moto's server in-process, resources from `infra/template.json`,
Lambda invocations dispatched to the Chalice app, S3→SQS events pumped to its handlers.

Nothing here is deployed: `chalice package` ships only `app.py` and `chalicelib/`.
"""

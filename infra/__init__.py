"""Deployment definitions (CloudFormation merge template, state machines) and the local stack."""

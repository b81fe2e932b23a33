"""Step Functions task handlers: thin `lambda_function`s that call services."""

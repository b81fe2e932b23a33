"""The only package that talks to AWS: DynamoDB through PynamoDB, S3/SQS/Step Functions via boto3."""

"""Publishing to AWS: the plan (pure) and the Lambda/S3 calls."""

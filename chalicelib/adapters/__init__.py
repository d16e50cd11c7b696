"""The shared adapters: the only files outside the slices' own data layers that talk to AWS or
the network (boto3 clients, the DynamoDB base, the idempotency store, queues and SMS, delayed
messages, the local stack's clock, HTTPS to partners). `chalicelib.core` stays pure."""

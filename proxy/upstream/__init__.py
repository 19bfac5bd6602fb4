"""The clients that talk to providers: the HTTP/1.1 client, the pooled httpx client, backoff."""

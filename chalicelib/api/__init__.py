"""The HTTP surface shared by every slice: `route()` and the error body, the OpenAPI document,
the system routes, and the glue that hands a queue's records to their handlers."""

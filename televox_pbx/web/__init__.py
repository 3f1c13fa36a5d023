"""The HTTP API under /api/v1 (aiohttp) and the outgoing webhooks.

server.py builds the application from the route tables of the api_* modules; the same
tables produce the OpenAPI document (openapi.py), so the two cannot drift apart.
"""

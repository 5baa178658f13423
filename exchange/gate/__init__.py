"""The RPC gate: who is calling (certificates, tokens, revocation), what they may
call, their limits, the catalog as the gateway sees it, and the one mapping of
domain refusals to gRPC statuses.
"""

"""Fleetscope's contract: the names every part of the system agrees on.

`contract.topology` describes every AWS resource of a stage (names and settings), `contract.resources`
is the compact form of those names the monitor receives, and `contract.metrics` names the metrics the
service emits and the monitor watches. The service, the monitor, the CDK app, the sandbox and the
dashboard import this package; it imports none of them (pydantic is its only dependency), so it ships
in every Lambda bundle.
"""

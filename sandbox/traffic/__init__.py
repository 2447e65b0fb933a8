"""Traffic on the sandbox: the simulated robotaxi fleet, the demand model it follows, the faults.

`demand` (requests per minute as a function of time), `fleet` (the simulator), with its parts
`vins`, `clock`, `api` (the cars API over HTTP), `telemetry` (readings to SQS) and `stats`; `faults`
(the injector that applies `fleetscope incident` to the runtime and the fleet).
"""

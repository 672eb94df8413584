"""Autoscaling the fleet on queue depth: the broker's queues are read (``depth``), the policy
decides (``boundary.api.autoscale_policy``), a backend acts (``local`` processes, ``compose`` services, or
``keda`` manifests for Kubernetes), and the controller (``controller``) publishes what it did
for `boundary status` (``state``)."""

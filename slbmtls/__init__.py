"""The Pulumi side of slb-mtls: validated stack config, the CLB component, and the offline tools
(plan, bundle, inspect, rehearse) that reuse the real program."""

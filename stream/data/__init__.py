"""Events as data: the wire-event parser, event logs, the service's archive, topic replay, synthetic fleets."""

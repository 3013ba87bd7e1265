"""Labeling: which predictions to ask a person about (the queue's pure ranking) and the formats the tasks
travel in (Label Studio). The hand-out itself (leases, SQL) is the registry's."""

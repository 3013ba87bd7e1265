"""Labeling: which predictions to ask a person about (the queue's pure ranking, ``ranking``), the hand-out
that ranks the registry's candidates and leases the picks (``handout``), and the formats the tasks travel
in (``formats``: JSON records, Label Studio). The SQL of the candidates and leases is the registry's."""

"""The control plane: the scheduler process (leader lease, APScheduler jobs), the run launchers
(subprocess, ``torchrun``, Kubernetes Jobs) and the post-promotion guard's job. It may use the monitor's
pure decisions and the registry's records; it starts retraining as a process, never imports it."""

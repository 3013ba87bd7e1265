"""The drift monitor: pure drift signals, the trigger policy, and (next) the scheduler process."""

"""The drift monitor: pure drift signals, the accuracy estimates, the trigger policy, the drift-check job and
the post-promotion guard's pure decision. The scheduler that runs them is ``orchestration/``."""

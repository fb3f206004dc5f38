-- Pause the rollout: cohorts stop advancing, gates are still watched.
obj.spec.paused = true
return obj

-- One-shot request to the modelfleet operator: retry. The action id makes it idempotent: the
-- operator acts once per id and records it in status.rollout.lastActionId.
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["modelfleet.dev/action"] = "retry"
obj.metadata.annotations["modelfleet.dev/action-id"] = "retry-" .. os.time()
return obj

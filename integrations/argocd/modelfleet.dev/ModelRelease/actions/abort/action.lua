-- One-shot request to the modelfleet operator: abort. The action id makes it idempotent: the
-- operator acts once per id and records it in status.rollout.lastActionId.
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["modelfleet.dev/action"] = "abort"
obj.metadata.annotations["modelfleet.dev/action-id"] = "abort-" .. os.time()
return obj

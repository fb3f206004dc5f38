-- One-shot request to the modelfleet operator: promote. The action id makes it idempotent: the
-- operator acts once per id and records it in status.rollout.lastActionId.
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["modelfleet.dev/action"] = "promote"
obj.metadata.annotations["modelfleet.dev/action-id"] = "promote-" .. os.time()
return obj

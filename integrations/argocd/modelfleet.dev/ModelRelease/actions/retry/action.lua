-- One-shot request to the modelfleet operator: retry. The operator runs it once per
-- modelfleet.dev/action-id and records that id in status.rollout.lastActionId.
-- The id comes from the object, not the clock: its metadata.resourceVersion, which every write
-- changes. Running the action again on the same object version asks for the same thing (one
-- retry); once anything changed (the operator recorded the last action, say), it is a new request.
local version = obj.metadata.resourceVersion
if version == nil then
  error("modelfleet.dev/ModelRelease retry: metadata.resourceVersion is missing; run the action on the live object", 0)
end
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["modelfleet.dev/action"] = "retry"
obj.metadata.annotations["modelfleet.dev/action-id"] = "retry-" .. tostring(version)
return obj

-- Argo CD health of a secretsync.io SecretSync, SecretStore or ClusterSecretStore,
-- read from the status the operator writes (kstatus conventions: a Ready condition and
-- observedGeneration). Lua 5.1, as Argo CD runs it.
--   Healthy      Ready=True for the current generation (Synced, or a store Valid)
--   Degraded     Ready=False for the current generation; the message says why
--   Progressing  no status yet, or the operator has not yet seen the latest spec
local hs = {}
local generation = obj.metadata and obj.metadata.generation
local status = obj.status
if status == nil or status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the secretsync operator to report"
  return hs
end
if generation ~= nil and status.observedGeneration ~= nil and status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to process generation " .. generation
  return hs
end
for _, condition in ipairs(status.conditions) do
  if condition.type == "Ready" then
    if generation ~= nil and condition.observedGeneration ~= nil and condition.observedGeneration < generation then
      hs.status = "Progressing"
      hs.message = "Waiting for the operator to process generation " .. generation
    elseif condition.status == "True" then
      hs.status = "Healthy"
      hs.message = condition.message or condition.reason or "Ready"
    elseif condition.status == "False" then
      hs.status = "Degraded"
      hs.message = (condition.reason or "NotReady") .. ": " .. (condition.message or "")
    else
      hs.status = "Progressing"
      hs.message = condition.message or "Ready is Unknown"
    end
    return hs
  end
end
hs.status = "Progressing"
hs.message = "Waiting for the Ready condition"
return hs

-- Health of a core Secret from the status annotations that kubestash writes.
-- Argo CD runs this script with gopher-lua (Lua 5.1) and without the string library.
local hs = {}
local labels = {}
local annotations = {}
if obj.metadata ~= nil then
  labels = obj.metadata.labels or {}
  annotations = obj.metadata.annotations or {}
end

local status = annotations["kubestash.io/sync-status"]
local message = annotations["kubestash.io/sync-message"]

if status == "Synced" then
  hs.status = "Healthy"
  if message ~= nil and message ~= "" then
    hs.message = message
  else
    hs.message = "Synced from the credstash table"
  end
  return hs
end

if status == "Failed" then
  hs.status = "Degraded"
  if message ~= nil and message ~= "" then
    hs.message = message
  else
    hs.message = "kubestash failed to sync this Secret. Read the kubestash log."
  end
  return hs
end

if labels["app.kubernetes.io/managed-by"] ~= "kubestash" then
  hs.status = "Healthy"
  return hs
end

if status == nil or status == "" then
  hs.status = "Progressing"
  hs.message = "Waiting for the first kubestash sync"
  return hs
end

hs.status = "Unknown"
hs.message = "Unknown kubestash.io/sync-status: " .. tostring(status)
return hs

-- Argo CD actions of a OneTimeShare (see deploy/argocd/README.md):
--   reissue  burn the live link, if any, and share the same spec anew under a new link
--            (sets the ots.dev/reshare annotation); offered once the share has had a link
--   burn     make deleting the resource burn its unread secret (spec.deletionPolicy: Burn);
--            offered while deletionPolicy is Keep. Argo CD actions cannot delete: deleting
--            the resource (Argo CD's Delete, or kubectl ots burn) is what burns.
local actions = {}

local status = nil
if type(obj.status) == "table" then
  status = obj.status
end
local phase = status and status.phase
local has_link = phase == "Shared" or phase == "Received" or phase == "Burned" or phase == "Expired"
actions["reissue"] = {["disabled"] = not has_link}

local policy = nil
if type(obj.spec) == "table" then
  policy = obj.spec.deletionPolicy
end
-- Burn is the default: without the field, deleting already burns.
actions["burn"] = {["disabled"] = policy == nil or policy == "Burn"}
return actions

-- Argo CD actions of a OneTimeShare (see deploy/argocd/README.md):
--   reissue  burn the live link, if any, and share the same spec anew under a new link
--            (sets the ots.dev/reshare annotation); offered once the share has had a link
--   burn     burn the live link now and keep the resource, Burned until a reissue (sets the
--            ots.dev/burn annotation); offered while the link is live (phase Shared)
local actions = {}

local status = nil
if type(obj.status) == "table" then
  status = obj.status
end
local phase = status and status.phase
local has_link = phase == "Shared" or phase == "Received" or phase == "Burned" or phase == "Expired"
actions["reissue"] = {["disabled"] = not has_link}

actions["burn"] = {["disabled"] = phase ~= "Shared"}
return actions

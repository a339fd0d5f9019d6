-- Burn: deleting the resource burns its unread secret once spec.deletionPolicy is Burn (the
-- default). Argo CD actions can change a resource but not delete it, so this action sets the
-- policy; then delete the resource (Argo CD's Delete, or `kubectl ots burn NAME`) and the
-- ots-operator burns the link before the resource goes.
if type(obj.spec) ~= "table" then
  obj.spec = {}
end
obj.spec.deletionPolicy = "Burn"
return obj

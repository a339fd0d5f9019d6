package main

// Runs Argo CD resource customizations (health.lua, actions/discovery.lua,
// actions/NAME/action.lua) the way Argo CD runs them, with gopher-lua, the Lua VM Argo CD embeds.
//
// What is reproduced, from argo-cd's util/lua/lua.go (VM.runLua, ExecuteHealthLua,
// ExecuteResourceAction, ExecuteResourceActionDiscovery) and util/lua/oslib_safe.go:
//   - a state without the standard libraries (custom scripts from argocd-cm run without them
//     unless useOpenLibs is set), then only package, base, table and a "safe" os are opened;
//   - the safe os offers time() and date() only, and Argo CD's OpenSafeOs registers them into
//     the module named "table" (lua.TabLibName), so scripts get them through
//     `local os = require("os")` (a preloaded module), as Argo CD's own actions do;
//   - the resource is the global `obj`, decoded from its JSON form;
//   - each run has a one-second deadline (a context on the state);
//   - the script's last value is encoded with layeh.com/gopher-json (as Argo CD does): a health
//     table becomes {status, message} (a status outside Argo CD's list becomes Unknown), a
//     discovery table maps action names to {disabled}, an action returns the changed object
//     (the old-style output), whose empty tables that were objects stay objects.
// No Argo CD code is copied here; this is a re-implementation for tests.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	luajson "layeh.com/gopher-json"
)

// Health is Argo CD's health of one resource.
type Health struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

// Action is one entry of an action discovery result.
type Action struct {
	Name     string `json:"name"`
	Disabled bool   `json:"disabled"`
}

// Argo CD's health status codes (gitops-engine's health.HealthStatusCode).
var healthStatuses = map[string]bool{
	"Unknown": true, "Progressing": true, "Suspended": true, "Healthy": true, "Degraded": true, "Missing": true,
}

// Customization is one resource_customizations/<group>/<Kind> directory.
type Customization struct {
	Dir string
}

func (c Customization) read(parts ...string) (string, error) {
	data, err := os.ReadFile(filepath.Join(append([]string{c.Dir}, parts...)...))
	if err != nil {
		return "", err
	}
	return string(data), nil
}

// run evaluates a script with `obj` set, as Argo CD's VM.runLua does, and returns the script's
// last value encoded as JSON.
func run(obj map[string]interface{}, script string) ([]byte, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.OsLibName, openSafeOs},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return nil, fmt.Errorf("opening %s: %w", lib.name, err)
		}
	}
	l.PreloadModule(lua.OsLibName, loadSafeOs)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(script); err != nil {
		return nil, err
	}
	value := l.Get(-1)
	if value.Type() != lua.LTTable {
		return nil, fmt.Errorf("expect table output from Lua script, not %s", value.Type().String())
	}
	return luajson.Encode(value)
}

// Health runs health.lua on obj.
func (c Customization) Health(obj map[string]interface{}) (Health, error) {
	script, err := c.read("health.lua")
	if err != nil {
		return Health{}, err
	}
	out, err := run(obj, script)
	if err != nil {
		return Health{}, err
	}
	var health Health
	if err := json.Unmarshal(out, &health); err != nil {
		return Health{}, fmt.Errorf("health output %s: %w", out, err)
	}
	if !healthStatuses[health.Status] {
		return Health{Status: "Unknown", Message: "Lua returned an invalid health status"}, nil
	}
	return health, nil
}

// Discover runs actions/discovery.lua on obj; the actions are sorted by name.
func (c Customization) Discover(obj map[string]interface{}) ([]Action, error) {
	script, err := c.read("actions", "discovery.lua")
	if err != nil {
		return nil, err
	}
	out, err := run(obj, script)
	if err != nil {
		return nil, err
	}
	actions := []Action{}
	// An empty table encodes as an empty array: no actions.
	if string(out) == "[]" {
		return actions, nil
	}
	var found map[string]interface{}
	if err := json.Unmarshal(out, &found); err != nil {
		return nil, fmt.Errorf("discovery output %s: %w", out, err)
	}
	for name, value := range found {
		action := Action{Name: name}
		if fields, ok := value.(map[string]interface{}); ok {
			if disabled, ok := fields["disabled"].(bool); ok {
				action.Disabled = disabled
			}
		}
		actions = append(actions, action)
	}
	sort.Slice(actions, func(i, j int) bool { return actions[i].Name < actions[j].Name })
	return actions, nil
}

// Act runs actions/NAME/action.lua on obj and returns the object it makes.
func (c Customization) Act(name string, obj map[string]interface{}) (map[string]interface{}, error) {
	script, err := c.read("actions", name, "action.lua")
	if err != nil {
		return nil, err
	}
	// The script changes its own copy of obj, never the caller's.
	out, err := run(obj, script)
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(string(out), "{") {
		return nil, fmt.Errorf("action %s returned %s, not an object", name, out)
	}
	changed := map[string]interface{}{}
	if err := utiljson.Unmarshal(out, &changed); err != nil {
		return nil, err
	}
	return keepEmptyObjects(changed, obj), nil
}

// keepEmptyObjects undoes the encoder's reading of an empty table as an array where the
// original held an object (Argo CD's cleanReturnedObj does the same).
func keepEmptyObjects(changed, original map[string]interface{}) map[string]interface{} {
	for key, value := range changed {
		before, ok := original[key].(map[string]interface{})
		if !ok {
			continue
		}
		switch v := value.(type) {
		case map[string]interface{}:
			changed[key] = keepEmptyObjects(v, before)
		case []interface{}:
			if len(v) == 0 {
				changed[key] = map[string]interface{}{}
			}
		}
	}
	return changed
}

// toLua converts a decoded JSON value into Lua values: objects and arrays become tables.
func toLua(l *lua.LState, value interface{}) lua.LValue {
	switch v := value.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(v)
	case string:
		return lua.LString(v)
	case float64:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case int:
		return lua.LNumber(v)
	case json.Number:
		return lua.LString(string(v))
	case []interface{}:
		table := l.CreateTable(len(v), 0)
		for _, item := range v {
			table.Append(toLua(l, item))
		}
		return table
	case map[string]interface{}:
		table := l.CreateTable(0, len(v))
		for key, item := range v {
			table.RawSetH(lua.LString(key), toLua(l, item))
		}
		return table
	}
	return lua.LNil
}

// The safe os: time() and date() only.
var safeOs = map[string]lua.LGFunction{
	"time": osTime,
	"date": osDate,
}

// openSafeOs registers the safe os functions under the module name Argo CD's OpenSafeOs uses
// (lua.TabLibName), so that, as there, only require("os") reaches them.
func openSafeOs(l *lua.LState) int {
	l.Push(l.RegisterModule(lua.TabLibName, safeOs))
	return 1
}

func loadSafeOs(l *lua.LState) int {
	l.Push(l.SetFuncs(l.NewTable(), safeOs))
	return 1
}

func osTime(l *lua.LState) int {
	l.Push(lua.LNumber(time.Now().Unix()))
	return 1
}

// osDate formats the time as C's strftime does for the flags Argo CD's safe os knows; a
// leading "!" means UTC, a second argument a Unix time.
func osDate(l *lua.LState) int {
	now := time.Now()
	format := "%c"
	if l.GetTop() >= 1 {
		format = l.CheckString(1)
	}
	utc := strings.HasPrefix(format, "!")
	format = strings.TrimPrefix(format, "!")
	if l.GetTop() >= 2 {
		now = time.Unix(l.CheckInt64(2), 0)
	}
	if utc {
		now = now.UTC()
	}
	l.Push(lua.LString(strftime(now, format)))
	return 1
}

var strftimeLayouts = map[byte]string{
	'a': "Mon", 'A': "Monday", 'b': "Jan", 'B': "January", 'c': "02 Jan 06 15:04 MST", 'd': "02",
	'F': "2006-01-02", 'H': "15", 'I': "03", 'm': "01", 'M': "04", 'p': "PM", 'S': "05",
	'X': "15:04:05", 'y': "06", 'Y': "2006", 'z': "-0700", 'Z': "MST",
}

func strftime(t time.Time, format string) string {
	var out strings.Builder
	for i := 0; i < len(format); i++ {
		if format[i] != '%' || i+1 == len(format) {
			out.WriteByte(format[i])
			continue
		}
		i++
		switch flag := format[i]; {
		case flag == '%':
			out.WriteByte('%')
		case strftimeLayouts[flag] != "":
			out.WriteString(t.Format(strftimeLayouts[flag]))
		default:
			out.WriteByte('%')
			out.WriteByte(flag)
		}
	}
	return out.String()
}
